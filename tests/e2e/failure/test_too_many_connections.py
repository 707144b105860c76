"""PostgreSQL refusing some connections ("too many connections") under a stream of jobs, through a real
worker: the jobs on pooled connections succeed between the refusals, the others retry; nothing is lost,
and the log says it once when it starts and once when it ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from tests.support.factories import Factory
from tests.support.outages import Feeder, all_results, scenario
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.support.workers import Workers, lines, wait_for_line

REFUSING_S = 10
TEST_DATABASE = urlsplit(TEST_DATABASE_URL).path.lstrip("/")
ROLE = f"{TEST_DATABASE}_limited"  # roles are shared by every database of the server: one per test database
DROP_ROLE = text(
    f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
            EXECUTE 'DROP OWNED BY "{ROLE}"';
            EXECUTE 'DROP ROLE "{ROLE}"';
        END IF;
    END $$"""
)


@contextlib.asynccontextmanager
async def limited_role(engine: AsyncEngine) -> AsyncIterator[str]:
    """A login role with the jobs' privileges on the test database; yields its database URL."""
    async with engine.connect() as conn:
        await conn.execute(DROP_ROLE)  # left by an interrupted run
        await conn.execute(text(f'CREATE ROLE "{ROLE}" LOGIN'))
        await conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{ROLE}"'))
        await conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{ROLE}"'))
        await conn.execute(text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{ROLE}"'))
        await conn.commit()
    parts = urlsplit(TEST_DATABASE_URL)
    url = urlunsplit(
        parts._replace(scheme="postgresql", netloc=f"{ROLE}@{parts.hostname}:{parts.port or 5432}")
    )
    try:
        yield url
    finally:
        await limit_connections(engine, None)
        async with engine.connect() as conn:
            await conn.execute(DROP_ROLE)
            await conn.commit()


async def limit_connections(engine: AsyncEngine, limit: int | None) -> None:
    """Allow the role `limit` connections (None: no limit). Connections already open stay open."""
    async with engine.connect() as conn:
        await conn.execute(text(f'ALTER ROLE "{ROLE}" CONNECTION LIMIT {-1 if limit is None else limit}'))
        await conn.commit()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_too_many_connections_is_one_outage(
    factory: Factory, engine: AsyncEngine, redis: Redis, workers: Workers
) -> None:
    tenant, phones, leads = await scenario(factory)
    async with limited_role(engine) as database_url:
        worker = workers.new("Settings", DATABASE_URL=database_url, RETRY_BACKOFF_BASE_S="1")
        async with worker, OutreachClient.connect(TEST_REDIS_URL) as client:
            await worker.wait_healthy(redis)
            # The worker's pool opens its connections as jobs need them: 2 get through, the others are
            # refused, and the jobs on those 2 keep succeeding between the refusals.
            await limit_connections(engine, 2)
            feeder = Feeder(client, tenant, phones, leads, burst=8)
            stop = asyncio.Event()
            feeding = asyncio.create_task(feeder.run(stop))
            await asyncio.sleep(REFUSING_S)
            await limit_connections(engine, None)
            await asyncio.sleep(3)
            stop.set()
            await feeding
            results = await all_results(feeder.acknowledged, redis, timeout=120)
            await wait_for_line(worker, "PostgreSQL available to jobs again", timeout=20)
            output = worker.output()

    failed = [r["r"] for r in results if not r["s"]]
    assert not failed, failed[:3]
    assert [r for r in results if r["t"] > 1], "no job met the refusals: the test proved nothing"
    assert "TooManyConnectionsError" in output
    assert lines(output, "PostgreSQL unavailable to jobs") == 1, output
    assert lines(output, "PostgreSQL available to jobs again") == 1, output
