"""The one classification of exceptions: is this a transient fault, and of which dependency?

A transient fault is PostgreSQL or Redis not answering (refused, reset, timed out, too many connections),
or a concurrent writer that changed the rows a job decided on: a later try on fresh state can succeed.
Everything else is permanent. The job wrapper retries transient faults, the outage log reports them per
dependency, the supervisor restarts its queue workers after one, and the ops tool prints one line for
one: all through `transient_fault`.
"""

from __future__ import annotations

import asyncio
import traceback
from enum import StrEnum

import asyncpg
import redis.exceptions
from sqlalchemy import exc as sa_exc

from src.redis_io.replicas import ReplicaAckTimeout


class Dependency(StrEnum):
    POSTGRESQL = "PostgreSQL"
    REDIS = "Redis"
    CONCURRENT_WRITER = "a concurrent writer"
    NETWORK = "the network"  # a socket error raised outside both clients' code


class Contention(Exception):
    """A concurrent writer changed the rows this job decided on; a retry on fresh data resolves it."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    Contention,
    OSError,
    asyncio.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # A primary demoted by a failover refuses writes (READONLY) until the client finds the new one.
    redis.exceptions.ReadOnlyError,
    # Fewer replicas than REDIS_MIN_REPLICA_ACKS confirmed a write: a later try may find them back.
    ReplicaAckTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # A pooled connection the server terminated (restart, pg_terminate_backend) whose goodbye arrived just
    # before the job's statement: the protocol refuses the statement ("cannot switch to state ...").
    asyncpg.InternalClientError,
    sa_exc.InterfaceError,
    sa_exc.OperationalError,
    sa_exc.TimeoutError,
)


_POSTGRES_ERRORS = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


# Code whose waits are waits on PostgreSQL: the drivers', and a queue's share of the jobs' pool, where a job
# waits for a connection another job holds (src/runtime/pool_share.py).
_POSTGRES_MODULES = ("asyncpg", "sqlalchemy", "src.runtime.pool_share")


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from or while handling, innermost last, each once."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT)


def _owner(exc: BaseException) -> Dependency | None:
    """The dependency an exception belongs to, by its type, else by the library whose code raised it (a
    refused connection surfaces as a bare OSError from asyncpg or redis-py)."""
    if isinstance(exc, Contention):
        return Dependency.CONCURRENT_WRITER
    if isinstance(exc, redis.exceptions.RedisError):
        return Dependency.REDIS
    if isinstance(exc, _POSTGRES_ERRORS):
        return Dependency.POSTGRESQL
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(_POSTGRES_MODULES):
            return Dependency.POSTGRESQL
        if module.startswith("redis"):
            return Dependency.REDIS
    return None


def transient_fault(exc: BaseException) -> Dependency | None:
    """The dependency whose fault `exc` is, when a retry can help; None for a permanent failure.

    The whole chain counts: redis-py reports a connection lost during a WATCH as a WatchError raised while
    handling the ConnectionError, and SQLAlchemy wraps the driver's error."""
    chain = _chain(exc)
    if not any(_is_transient(link) for link in chain):
        return None
    for link in chain:
        owner = _owner(link)
        if owner is not None:
            return owner
    return Dependency.NETWORK


def describe(exc: BaseException) -> str:
    """A fault in one line: its type and the first line of its message (asyncpg's timeouts have none)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def backoff_seconds(job_try: int, *, base: float, cap: float) -> float:
    """Exponential backoff for the retry after try number `job_try` (1-based): base, 2*base, ... cap."""
    return float(min(cap, base * 2 ** max(0, job_try - 1)))
