"""One queue's share of a pool it shares with other queues: at most `limit` of its connections at once.

In the all-queues process (`arq src.worker.Settings`) every queue's jobs take connections from one pool of
DB_POOL_SIZE. A per-lead job holds one for a statement or two; a dispatch holds one for its whole batch:
the transaction, the Redis reservation inside it, the enqueue after it, which a slow Redis (or a WAIT for
replicas) stretches to seconds. With DISPATCH_CONCURRENCY at the pool's size, dispatches could hold every
connection while per-lead jobs waited out their budgets. The dispatch queue gets a share instead
(`dispatch_share`), so the rest of the pool is always there for the per-lead jobs.

A job waiting for a place in its share waits as for a connection: its budget bounds the wait
(src/runtime/budget.py), and a wait cut by the budget is a PostgreSQL fault (src/runtime/faults.py names
this module).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import asyncpg


def dispatch_share(pool_size: int) -> int:
    """The connections dispatches may hold at once when they share a pool of `pool_size` with per-lead
    jobs: all but a quarter of it, and never all of it unless it has just one."""
    return max(1, pool_size - max(1, pool_size // 4))


class PoolShare:
    """`acquire()` of `pool`, for at most `limit` holders at a time, served in the order they came."""

    __slots__ = ("_places", "limit", "pool")

    def __init__(self, pool: asyncpg.Pool, limit: int) -> None:
        self.pool = pool
        self.limit = limit
        self._places = asyncio.Semaphore(limit)

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, timeout)


class _Acquire:
    __slots__ = ("_inner", "_share", "_timeout")

    def __init__(self, share: PoolShare, timeout: float | None) -> None:
        self._share = share
        self._timeout = timeout
        self._inner: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        places = self._share._places
        await places.acquire()
        try:
            self._inner = self._share.pool.acquire(timeout=self._timeout)
            return await self._inner.__aenter__()
        except BaseException:
            places.release()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            self._share._places.release()
