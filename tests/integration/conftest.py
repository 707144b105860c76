"""Fixtures of the integration tests beyond tests/conftest.py's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from src.runtime.budget import JobPool
from src.runtime.deps import create_job_pool
from tests.support.services import make_settings


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[JobPool]:
    """The jobs' pool, as `build_deps` makes it, of 2 connections."""
    built = await create_job_pool(make_settings(db_pool_size=2))
    assert isinstance(built, JobPool)
    try:
        yield built
    finally:
        await asyncio.wait_for(built.close(), 10)
