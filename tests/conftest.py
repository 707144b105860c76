"""Shared test configuration: real PostgreSQL and Redis, named by TEST_DATABASE_URL and TEST_REDIS_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
