"""The resources a job uses, built once per process and shared by every queue worker in it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from src.outbound import Outbound
from src.quota import QuotaLedger
from src.redis_url import close_redis, create_redis_client
from src.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine  # dispatch and the ops tool: transactions, set-based statements
    pg: asyncpg.Pool  # the per-lead jobs: one or two statements each, no transaction
    redis: Redis
    quota: QuotaLedger
    outbound: Outbound
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.SystemRandom)


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_connect_timeout_s,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "server_settings": {"application_name": "cerniq-outreach"},
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip: a pooled connection whose socket the server
    closed (a restart, a terminated backend, a proxy that dropped it) is replaced before a job uses it.

    pool_pre_ping finds the same with BEGIN, SELECT and ROLLBACK on every checkout: three round trips,
    as many as a per-lead job's own. A connection that dies while in use fails its query, which is a
    transient fault (arq Retry), as before.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The per-lead jobs leave no session state behind (no SET, LISTEN, advisory lock or cursor), so a
    released connection needs no reset query: asyncpg's default sends one on every release."""


async def create_job_pool(settings: Settings) -> asyncpg.Pool:
    """Connections open lazily (min_size 0): a worker starts even while PostgreSQL is down, and its jobs
    retry until it answers. A connection the server closed is replaced when it is next acquired."""
    pool = await asyncpg.create_pool(
        settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
        min_size=0,
        max_size=settings.db_job_pool_size,
        timeout=settings.db_connect_timeout_s,
        reset=_keep_session,
        server_settings={"application_name": "cerniq-outreach"},
    )
    assert pool is not None
    return pool


def create_redis(settings: Settings) -> Redis:
    return create_redis_client(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout_s=settings.redis_socket_timeout_s,
    )


async def build_deps(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Deps:
    redis = create_redis(settings)
    return Deps(
        settings=settings,
        engine=create_engine(settings),
        pg=await create_job_pool(settings),
        redis=redis,
        quota=QuotaLedger(redis, ttl_s=settings.quota_key_ttl_s),
        outbound=Outbound(redis),
        clock=clock,
    )


async def close_deps(deps: Deps) -> None:
    await deps.engine.dispose()
    await deps.pg.close()
    await close_redis(deps.redis)
