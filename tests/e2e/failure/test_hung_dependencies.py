"""A dependency that hangs instead of refusing: Redis frozen with SIGSTOP, PostgreSQL behind a proxy that
keeps its connections open and forwards nothing. Jobs of all four kinds are in flight when it hangs.

Every dependency call of a job gives up inside that job's own timeout (select_channel 2 s, allocate_phone
3 s, route 5 s, dispatch 30 s) and the job retries: once the dependency answers again every job completes,
none is stored as failed, and the log names the dependency instead of arq's bare "TimeoutError".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.client import EnqueuedJob, OutreachClient
from tests.support.factories import Factory
from tests.support.outages import all_results, scenario
from tests.support.servers import CuttableProxy, RedisServer
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.support.workers import Workers, lines

HANG_S = 6  # longer than the timeout of every per-lead job (route's 5 s)
PER_KIND = 10

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # every test here hangs a real dependency


@contextlib.asynccontextmanager
async def postgres_proxy() -> AsyncIterator[tuple[CuttableProxy, str]]:
    target = urlsplit(TEST_DATABASE_URL)
    proxy = CuttableProxy(target.port or 5432)
    await proxy.start()
    try:
        yield proxy, f"postgresql://postgres@127.0.0.1:{proxy.port}{target.path}"
    finally:
        proxy.resume()
        await proxy.close()


async def enqueue_every_kind(
    client: OutreachClient, tenant: UUID, phones: list[UUID], leads: list[UUID]
) -> dict[str, list[EnqueuedJob[Any]]]:
    """PER_KIND jobs of each of the four kinds, each for another lead (dispatches take disjoint batches)."""
    jobs: dict[str, list[EnqueuedJob[Any]]] = {"select": [], "allocate": [], "route": [], "dispatch": []}
    for n in range(PER_KIND):
        lead = leads[n]
        jobs["select"].append(await client.select_channel(tenant_id=tenant, lead_id=lead))
        jobs["allocate"].append(await client.allocate_phone(tenant_id=tenant, lead_id=leads[PER_KIND + n]))
        jobs["route"].append(
            await client.route(
                tenant_id=tenant,
                lead_id=leads[2 * PER_KIND + n],
                phone_id=phones[n % len(phones)],
                message_type="FOLLOWUP",
                payload={"n": n},
            )
        )
        jobs["dispatch"].append(await client.dispatch(tenant_id=tenant, batch_size=5))
    return jobs


async def warm_up(client: OutreachClient, tenant: UUID, phones: list[UUID], leads: list[UUID]) -> None:
    """One job of each kind through the worker, so its pools hold open connections when the hang starts."""
    lead = leads[-1]
    await (await client.select_channel(tenant_id=tenant, lead_id=lead)).result(timeout=20)
    await (await client.allocate_phone(tenant_id=tenant, lead_id=lead)).result(timeout=20)
    routed = await client.route(
        tenant_id=tenant, lead_id=lead, phone_id=phones[0], message_type="FOLLOWUP", payload={}
    )
    await routed.result(timeout=20)
    await (await client.dispatch(tenant_id=tenant, batch_size=1, dry_run=True)).result(timeout=20)


async def outcomes(jobs: dict[str, list[EnqueuedJob[Any]]], redis: Redis) -> dict[str, list[dict[str, Any]]]:
    return {kind: await all_results(batch, redis, timeout=90) for kind, batch in jobs.items()}


def assert_none_failed(results: dict[str, list[dict[str, Any]]]) -> None:
    failed = {kind: [r["r"] for r in batch if not r["s"]] for kind, batch in results.items()}
    assert not any(failed.values()), failed


def assert_retried(results: dict[str, list[dict[str, Any]]], *kinds: str) -> None:
    """Each of these jobs met the hang, so none can have completed on its first try."""
    tries = {kind: [r["t"] for r in results[kind]] for kind in kinds}
    assert all(t >= 2 for batch in tries.values() for t in batch), tries


def assert_quiet_about_timeouts(output: str, dependency: str) -> None:
    assert lines(output, rf"{dependency} unavailable to jobs") == 1, output
    assert "TimeoutError()" not in output, output
    assert not re.search(r"! \S+ failed", output), output  # arq's line for a job stored as failed


async def test_jobs_in_flight_outlive_a_hung_redis(
    own_redis: RedisServer, factory: Factory, workers: Workers
) -> None:
    tenant, phones, leads = await scenario(factory)
    own = Redis.from_url(own_redis.url)
    async with postgres_proxy() as (proxy, database_url):
        worker = workers.new("Settings", REDIS_URL=own_redis.url, DATABASE_URL=database_url)
        async with worker, OutreachClient.connect(own_redis.url) as client:
            await worker.wait_healthy(own)
            await warm_up(client, tenant, phones, leads)
            # Hold every job in its first PostgreSQL call, freeze Redis under them, then let PostgreSQL
            # answer: each job's next call, to Redis, meets the hang.
            proxy.hang()
            jobs = await enqueue_every_kind(client, tenant, phones, leads)
            await asyncio.sleep(0.5)
            own_redis.freeze()
            proxy.resume()
            await asyncio.sleep(HANG_S)
            own_redis.thaw()
            results = await outcomes(jobs, own)
            output = worker.output()
    await own.aclose()

    assert_none_failed(results)
    assert_retried(results, "allocate", "route")
    assert_quiet_about_timeouts(output, "Redis")


async def test_jobs_in_flight_outlive_a_hung_postgres(
    factory: Factory, redis: Redis, workers: Workers
) -> None:
    tenant, phones, leads = await scenario(factory)
    async with postgres_proxy() as (proxy, database_url):
        worker = workers.new("Settings", DATABASE_URL=database_url)
        async with worker, OutreachClient.connect(TEST_REDIS_URL) as client:
            await worker.wait_healthy(redis)
            await warm_up(client, tenant, phones, leads)
            proxy.hang()
            jobs = await enqueue_every_kind(client, tenant, phones, leads)
            await asyncio.sleep(HANG_S)
            proxy.resume()
            results = await outcomes(jobs, redis)
            output = worker.output()

    assert_none_failed(results)
    assert_retried(results, "select", "allocate", "route")
    assert_quiet_about_timeouts(output, "PostgreSQL")
