"""The jobs' PostgreSQL pool: asyncpg's, bounded by each job's budget, with a fast path for the usual case.

Every job acquires a connection, runs a statement or two and releases it. asyncpg's pool pays for its
generality on each of those: an acquire inside a job (which always has a timeout) runs under
`asyncio.wait_for`, a task and a timer of its own; a release runs the connection's reset under
`asyncio.shield`, another task, and under `asyncio.timeout`, another timer. Together ~40-50 us of the
worker's CPU per acquire and release, a third of what a job's PostgreSQL round trip costs it
(bench/README.md).

The fast path does what asyncpg's own steps come to in the usual case, and nothing else:
- acquire, when an idle connection is open and of the pool's current generation: take it at once.
  Nothing awaits, so there is nothing to time out. (As on asyncpg's path, which takes an idle connection
  from its queue at once too: a task that was woken for a released connection but has not run yet can
  find it gone, and waits again.)
- release, when the connection is open, in no transaction, not cancelling a statement, not due for
  closing (max_queries, an expired generation) and has no listeners: hand it back at once. Nothing
  awaits, so a cancellation cannot cut it halfway, which is what the shield was for; and there is nothing
  to reset, as the jobs leave no session state (`src.runtime.deps._keep_session`).
Anything else (no idle connection, a waiter, a connection to open, roll back, wait for or close) takes
asyncpg's own path, unchanged.

The fast path reads asyncpg's private pool state. It is written against asyncpg 0.32 (requirements.lock);
with any other version the pool is asyncpg's alone (`FAST_PATH`), and a test fails until someone has
checked the fast path against the new version's pool.py.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from src.runtime.budget import RELEASE_S, bounded

# The asyncpg releases whose pool internals (Pool._acquire, Pool.release, PoolConnectionHolder.acquire and
# .release) the fast path was checked against.
CHECKED_ASYNCPG = ("0.32.",)
FAST_PATH = asyncpg.__version__.startswith(CHECKED_ASYNCPG)


class JobPool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's pool: waiting for a connection (and opening one) is bounded by the job's budget, and a
    release waits at most RELEASE_S for a cut statement's cancel. Idle connections come and go at once."""

    fast_path = FAST_PATH

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=bounded(timeout))

    async def _acquire(self, timeout: float | None) -> Any:
        proxy = self._take_idle(timeout) if self.fast_path else None
        return proxy if proxy is not None else await super()._acquire(timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        if self.fast_path and self._give_back(connection):
            return
        await super().release(connection, timeout=RELEASE_S if timeout is None else timeout)

    def _take_idle(self, timeout: float | None) -> Any:
        """An open idle connection, taken without awaiting; None when asyncpg's path must run."""
        queue = self._queue
        if not self._initialized or self._closing or self._closed or queue.empty():
            return None
        holder = queue.get_nowait()  # the most recently released open connection, if any is open
        con = holder._con
        if con is None or con.is_closed() or holder._generation != self._generation or holder._setup:
            queue.put_nowait(holder)
            return None
        holder._maybe_cancel_inactive_callback()
        holder._proxy = proxy = PoolConnectionProxy(holder, con)
        holder._in_use = self._loop.create_future()
        holder._timeout = timeout
        return proxy

    def _give_back(self, proxy: Any) -> bool:
        """Return a connection that needs nothing done to it to the pool, without awaiting; False when
        asyncpg's path must run (it also refuses what is not this pool's)."""
        if type(proxy) is not PoolConnectionProxy:
            return False
        holder, con = proxy._holder, proxy._con
        if (
            con is None
            or holder._pool is not self
            or holder._in_use is None
            or con.is_closed()
            or con.is_in_transaction()
            or con._top_xact is not None
            or con._protocol._is_cancelling()
            or con._protocol.queries_count >= holder._max_queries
            or holder._generation != self._generation
            or con._listeners
            or con._log_listeners
        ):
            return False
        con._on_release()
        holder._timeout = None
        holder._release()
        holder._setup_inactive_callback()
        return True
