"""Redis stopped for 10 s, PostgreSQL unreachable for 10 s, in the middle of a run of the real worker.

Jobs caught by an outage fail transiently, retry with bounded backoff and complete after recovery; none is
lost or doubled; the worker process survives and says so once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import date
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from tests.support.factories import Factory
from tests.support.invariants import ledger
from tests.support.outages import Feeder, all_results, scenario
from tests.support.servers import CuttableProxy, RedisServer
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.support.workers import Workers, lines, wait_for_line

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # every test here runs real outages

OUTAGE_S = 10
WORKER_ENV = {"DISPATCH_CRON_ENABLED": "false", "OUTBOX_RELAY_GRACE_S": "5", "RETRY_BACKOFF_BASE_S": "1"}


async def test_redis_stopped_for_ten_seconds(
    own_redis: RedisServer, factory: Factory, engine: AsyncEngine, workers: Workers, today: date
) -> None:
    tenant, phones, leads = await scenario(factory)
    outage_redis = Redis.from_url(own_redis.url)
    # Dispatches pause 1.5 s after reserving quota, so that some are in flight when Redis goes away.
    slow = {"CHAOS_PAUSE_AT": "after_reserve", "CHAOS_PAUSE_S": "1.5"}
    worker = workers.new("Settings", REDIS_URL=own_redis.url, **slow, **WORKER_ENV)
    async with worker, OutreachClient.connect(own_redis.url) as client:
        await worker.wait_healthy(outage_redis)
        feeder = Feeder(client, tenant, phones, leads)
        stop = asyncio.Event()
        feeding = asyncio.create_task(feeder.run(stop))
        await asyncio.sleep(3)
        before_outage = len(feeder.acknowledged)
        own_redis.stop()
        await asyncio.sleep(OUTAGE_S)
        own_redis.start()
        await asyncio.sleep(3)
        stop.set()
        await feeding

        results = await all_results(feeder.acknowledged, outage_redis, timeout=120)
        assert worker.process is not None
        assert worker.process.poll() is None, "the worker process died with Redis"
        output = worker.output()
        dispatch_check = await (await client.dispatch(tenant_id=tenant, batch_size=5)).result(timeout=30)
        book = await ledger(engine, outage_redis, today)
    await outage_redis.aclose()

    assert before_outage > 20
    assert feeder.refused > 0  # the client saw the outage too
    failed = [r for r in results if not r["s"]]
    assert not failed, failed[:3]
    assert [r for r in results if r["t"] > 1], "no job was caught by the outage: the test proved nothing"
    assert lines(output, "Redis unreachable") == 1, output
    assert lines(output, "Redis reachable again") == 1, output
    # A job meets the outage itself only when it talks to Redis before the supervisor cancels it (the
    # cancelled ones run again without a word), so the jobs' own line comes at most once.
    seen_by_jobs = lines(output, "Redis unavailable to jobs")
    assert seen_by_jobs <= 1, output
    # Those lines are the whole story: no traceback per job, no worker "died", nothing else. (Besides the
    # test's own pauses, and the relay of a batch whose enqueue the outage interrupted, one line a batch;
    # told apart by their words, not by the module that logs them, which moves as src is reorganised.)
    noise = re.findall(
        r"^.*\| (?:WARNING|ERROR|CRITICAL) +\| (?!.*(?:chaos: pausing |relayed \d+ jobs of )).*$",
        output,
        flags=re.MULTILINE,
    )
    print("\n".join(noise))
    assert len(noise) == 1 + seen_by_jobs, noise  # "Redis reachable again" is an INFO line
    assert dispatch_check.total_eligible_leads >= 0
    book.assert_clean()


async def test_postgres_unreachable_for_ten_seconds(
    factory: Factory, engine: AsyncEngine, redis: Redis, workers: Workers, today: date
) -> None:
    tenant, phones, leads = await scenario(factory)
    target = urlsplit(TEST_DATABASE_URL)
    proxy = CuttableProxy(target.port or 5432)
    await proxy.start()
    database_url = f"postgresql://postgres@127.0.0.1:{proxy.port}{target.path}"
    worker = workers.new("Settings", DATABASE_URL=database_url, **WORKER_ENV)
    try:
        async with worker, OutreachClient.connect(TEST_REDIS_URL) as client:
            await worker.wait_healthy(redis)
            feeder = Feeder(client, tenant, phones, leads)
            stop = asyncio.Event()
            feeding = asyncio.create_task(feeder.run(stop))
            await asyncio.sleep(3)
            await proxy.cut()
            await asyncio.sleep(OUTAGE_S)
            await proxy.restore()
            await asyncio.sleep(3)
            stop.set()
            await feeding

            results = await all_results(feeder.acknowledged, redis, timeout=120)
            assert worker.process is not None
            assert worker.process.poll() is None
            await (await client.dispatch(tenant_id=tenant, batch_size=5)).result(timeout=30)
            await wait_for_line(worker, "PostgreSQL available to jobs again", timeout=20)
            output = worker.output()
    finally:
        with contextlib.suppress(Exception):
            await proxy.close()

    failed = [r for r in results if not r["s"]]
    assert not failed, failed[:3]
    retried = [r for r in results if r["t"] > 1]
    assert retried, "no job met the outage: the test proved nothing"
    assert max(r["t"] for r in results) <= 5  # RETRY_MAX_TRIES bounds the retries
    assert lines(output, "PostgreSQL unavailable to jobs") == 1, output
    assert lines(output, "PostgreSQL available to jobs again") == 1, output
    noise = re.findall(r"^.*\| (?:WARNING|ERROR|CRITICAL) +\|.*$", output, flags=re.MULTILINE)
    print("\n".join(noise))
    assert len(noise) <= 5, noise
    book = await ledger(engine, redis, today)
    book.assert_clean()
