"""Where the tests' PostgreSQL and Redis are, and the environment of every process that tests and
benchmarks start against a PostgreSQL and a Redis (alembic, worker processes, the ops tool, the demo)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from src.config import Config

ROOT = Path(__file__).resolve().parents[2]
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/cerniq_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

# Every table a test or a benchmark empties before it starts (TRUNCATE ... CASCADE).
TABLES = (
    "outreach_messages, suppressions, dispatch_outbox, gold_lead_journey, wa_phone_numbers, gold_companies, "
    "tenants"
)

# Test-only settings a developer may have exported: a process gets them only when its caller says so
# (a test's worker processes get the test's CLOCK_SHIFT_S; the ops tool and the demo run on the host's
# clock, which is the only one they read).
_NOT_INHERITED = ("CHAOS_", "METRICS_", "CLOCK_SHIFT_S")


def process_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess pointed at these services, run from the repository root."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_NOT_INHERITED)}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess pointed at the test services."""
    return process_env(TEST_DATABASE_URL, TEST_REDIS_URL, **extra)


def alembic(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`alembic ARGS` on the test database, or on the one `env` names."""
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=dict(env) if env is not None else service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_settings(**overrides: Any) -> Config:
    """The service's Config on the test services, with short retry backoffs and no outbox relay grace."""
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


def run_sql(sql: str) -> None:
    """One statement on the test database, committed, from a test without an event loop of its own."""

    async def execute() -> None:
        engine = create_async_engine(TEST_DATABASE_URL)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(execute())


async def command_calls(redis: Redis) -> dict[str, int]:
    """Calls of each command the Redis server has run since its last CONFIG RESETSTAT (INFO commandstats,
    the whole server's), by lower-case name."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}
