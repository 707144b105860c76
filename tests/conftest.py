"""Shared fixtures: real PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL), emptied before each test.

The helpers behind them, which the benchmarks use too, are in tests/support.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps, close_deps, create_engine
from tests.support.clock import OPEN_HOURS
from tests.support.factories import Factory
from tests.support.servers import RedisServer
from tests.support.services import (
    TABLES,
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    alembic,
    make_settings,
    service_env,
)
from tests.support.workers import Workers


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """The test database at the head revision, built by the real migrations."""
    result = alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr
    return TEST_DATABASE_URL


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(OPEN_HOURS)


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """SQLAlchemy for the tests' own statements (the jobs run on Deps.pg)."""
    built = create_engine(make_settings())
    try:
        yield built
    finally:
        await built.dispose()


@pytest.fixture
async def deps(engine: AsyncEngine, clock: FixedClock) -> AsyncIterator[Deps]:
    """The jobs' resources, on emptied tables and an empty Redis database."""
    built = await build_deps(make_settings(), clock=clock)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    await built.redis.flushdb()
    try:
        yield built
    finally:
        await close_deps(built)


@pytest.fixture
def redis(deps: Deps) -> Redis:
    return deps.redis


@pytest.fixture
def factory(deps: Deps, engine: AsyncEngine) -> Factory:
    return Factory(engine)


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[OutreachClient]:
    """The ops client on the test Redis, once the test's tables and Redis database are empty."""
    async with OutreachClient.connect(TEST_REDIS_URL) as connected:
        yield connected


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Makes the test's `arq src.worker.<Settings>` processes; kills any the test left running."""
    made = Workers(service_env())
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free port, that the test may stop, freeze or kill."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
