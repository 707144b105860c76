"""Shared fixtures: real PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL), emptied before each test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.config import Config
from src.runtime.clock import FixedClock as Clock
from src.runtime.deps import Deps, build_deps, close_deps, create_engine
from tests.factories import Factory

ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/cerniq_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess (alembic, arq worker) pointed at the test services."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CHAOS_", "METRICS_"))}
    env.update(DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL, PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def alembic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """The test database at the head revision, built by the real migrations."""
    result = alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr
    return TEST_DATABASE_URL


# A Wednesday, 10:00 in Bucharest: inside the default sending window, not a Romanian holiday.
OPEN_HOURS = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

TABLES = "dispatch_outbox, gold_lead_journey, wa_phone_numbers, gold_companies, tenants"


def make_settings(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "database_url": TEST_DATABASE_URL,
        "redis_url": TEST_REDIS_URL,
        "retry_backoff_base_s": 0.1,
        "retry_backoff_max_s": 0.5,
        "outbox_relay_grace_s": 0,
        "db_pool_size": 60,
    }
    values.update(overrides)
    return Config(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN_HOURS)


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """SQLAlchemy for the tests' own statements (the jobs run on Deps.pg)."""
    built = create_engine(make_settings())
    try:
        yield built
    finally:
        await built.dispose()


@pytest.fixture
async def deps(engine: AsyncEngine, clock: Clock) -> AsyncIterator[Deps]:
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


def job_ctx(deps: Deps, job_id: str = "test-job", job_try: int = 1) -> dict[str, Any]:
    """The ctx arq passes to a job function, for calling jobs directly."""
    return {"deps": deps, "job_id": job_id, "job_try": job_try, "queue": "test"}
