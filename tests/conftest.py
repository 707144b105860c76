"""Shared fixtures: real PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL), emptied before each test,
and a clock that starts each test at TEST_NOW (tests/support/clock.py), worker processes included.

The helpers behind them, which the benchmarks use too, are in tests/support.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.domain.quota import quota_date
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps, close_deps, create_engine
from tests.support.clock import clock_shift_s, configured_now
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


def pytest_configure(config: pytest.Config) -> None:
    try:
        configured_now()
    except ValueError as bad:
        raise pytest.UsageError(str(bad)) from None


def pytest_report_header(config: pytest.Config) -> str:
    value = os.environ.get("TEST_NOW") or ""
    if value.strip().lower() == "now":
        return "TEST_NOW=now: each test starts at the real current instant"
    return f"TEST_NOW={value or '(unset)'}: each test starts at {configured_now().isoformat()}"


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """The test database at the head revision, built by the real migrations."""
    result = alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr
    return TEST_DATABASE_URL


@pytest.fixture
def clock() -> FixedClock:
    """The test's clock: it stands at TEST_NOW (tests/support/clock.py) until the test sets it."""
    return FixedClock(configured_now())


@pytest.fixture
def today(clock: FixedClock) -> date:
    """The quota day at the test's start in Europe/Bucharest, a tenant's timezone unless it says otherwise."""
    return quota_date(clock(), "Europe/Bucharest")


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
def workers(clock: FixedClock) -> Iterator[Workers]:
    """Makes the test's `arq src.worker.<Settings>` processes, on the test's clock; kills any the test left
    running.

    Every worker gets the same CLOCK_SHIFT_S, computed once here as the test starts: TEST_NOW minus the
    host's now. So a worker's clock reads, when the test starts, what the test's clock reads, and runs
    on from there; all the workers of a test share one clock, a worker started after another was killed
    too. Computing it per worker instead would start each one at TEST_NOW again, set back by however
    long the test had run. The test's own clock stands still: the workers are ahead of it by the test's
    duration, the same day unless TEST_NOW is that close to midnight.
    """
    made = Workers(service_env(CLOCK_SHIFT_S=repr(clock_shift_s(clock.now))))
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
