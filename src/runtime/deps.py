"""The resources a job uses, built once per process and shared by every queue worker in it."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from src.config import Config
from src.names import Queue
from src.redis_io.connection import close_redis, create_redis_client
from src.redis_io.job_writer import JobWriter
from src.redis_io.quota_ledger import QuotaLedger
from src.redis_io.replicas import ReplicaAcks
from src.runtime.budget import BudgetedConnection, JobPool
from src.runtime.clock import Clock, SystemClock
from src.runtime.pool_share import PoolShare, dispatch_share


@dataclass(frozen=True)
class Deps:
    config: Config
    # Every job's statements (src/db/queries), on plain asyncpg connections: the process's pool, or the
    # dispatch queue's share of it where per-lead jobs use it too (`for_queues`).
    pg: asyncpg.Pool | PoolShare
    redis: Redis
    quota: QuotaLedger
    job_writer: JobWriter
    clock: Clock
    rng: random.Random = field(default_factory=random.SystemRandom)


def create_engine(config: Config) -> AsyncEngine:
    """SQLAlchemy, for the ops tool (src/ops) and the tests' set-up: the jobs run on `create_job_pool`."""
    return create_async_engine(
        config.database_url,
        pool_size=config.db_pool_size,
        max_overflow=0,
        pool_timeout=config.db_connect_timeout_s,
        pool_pre_ping=True,  # a command-line tool: a round trip per checkout costs nothing here
        connect_args={
            "timeout": config.db_connect_timeout_s,
            "server_settings": {"application_name": "cerniq-outreach"},
        },
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The jobs leave no session state behind (no SET, LISTEN, advisory lock or cursor), so a released
    connection needs no reset query: asyncpg's default sends one on every release. A transaction left open
    is still rolled back: the pool does that before it calls this."""


async def create_job_pool(config: Config) -> asyncpg.Pool:
    """Connections open lazily (min_size 0): a worker starts even while PostgreSQL is down, and its jobs
    retry until it answers. A connection the server closed is replaced when it is next acquired. Inside a
    job, every wait on PostgreSQL is bounded by the job's budget (src/runtime/budget.py).

    Plain asyncpg rather than SQLAlchemy: a job is a handful of statements, and SQLAlchemy's execution
    layer cost as much CPU as PostgreSQL's work on them (bench/README.md)."""
    pool = JobPool(
        config.database_url_sync_scheme,
        # asyncpg.create_pool's defaults, but for the classes and the sizes
        connection_class=BudgetedConnection,
        record_class=asyncpg.Record,
        min_size=0,
        max_size=config.db_pool_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        timeout=config.db_connect_timeout_s,
        reset=_keep_session,
        server_settings={"application_name": "cerniq-outreach"},
    )
    await pool
    return pool


def create_redis(config: Config) -> Redis:
    return create_redis_client(
        config.redis_url,
        max_connections=config.redis_max_connections,
        timeout_s=config.redis_socket_timeout_s,
    )


async def build_deps(config: Config, *, clock: Clock | None = None) -> Deps:
    redis = create_redis(config)
    acks = ReplicaAcks.configured(redis, config)
    return Deps(
        config=config,
        pg=await create_job_pool(config),
        redis=redis,
        quota=QuotaLedger(redis, ttl_s=config.quota_key_ttl_s, acks=acks),
        job_writer=JobWriter(redis, acks=acks),
        clock=clock or SystemClock(config.clock_shift_s),
    )


def for_queues(deps: Deps, queues: Sequence[Queue]) -> dict[Queue, Deps]:
    """Each queue's Deps in a process that runs `queues` on `deps`: `deps` itself, except that dispatch,
    which holds its connection for a whole batch, gets a share of the pool when per-lead jobs use it too
    (src/runtime/pool_share.py)."""
    own = dict.fromkeys(queues, deps)
    if Queue.DISPATCH in own and len(own) > 1:
        share = PoolShare(deps.pg, dispatch_share(deps.config.db_pool_size))
        own[Queue.DISPATCH] = dataclasses.replace(deps, pg=share)
    return own


async def close_deps(deps: Deps) -> None:
    assert not isinstance(deps.pg, PoolShare), "close the process's Deps, not a queue's share of them"
    await deps.pg.close()
    await close_redis(deps.redis)
