"""The one-queue processes (`arq src.worker.DispatchSettings` and the other three) outlive a Redis outage
under the same supervisor as the all-queues process: they do not exit, say so once when Redis goes and once
when it is back, and serve their queue again without a restart."""

from __future__ import annotations

import asyncio
import re

import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from tests.support.factories import Factory
from tests.support.servers import RedisServer
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers, lines, wait_for_line

PER_QUEUE = ("DispatchSettings", "RouterSettings", "AllocatorSettings", "SelectorSettings")
OUTAGE_S = 3


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_each_one_queue_process_outlives_redis_going_away(
    own_redis: RedisServer, factory: Factory, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant, assigned_phone_id=phone)
    own = Redis.from_url(own_redis.url)
    processes = [workers.new(settings, REDIS_URL=own_redis.url).start() for settings in PER_QUEUE]
    try:
        for process in processes:
            await process.wait_healthy(own, timeout=30)
        await asyncio.sleep(1.5)  # each watch has seen Redis answer
        own_redis.stop()
        await asyncio.sleep(OUTAGE_S)
        assert [p.running for p in processes] == [True] * 4, [p.output() for p in processes]
        own_redis.start()
        for process in processes:
            await wait_for_line(process, "Redis reachable again", timeout=20)

        async with OutreachClient.connect(own_redis.url) as client:
            jobs = [
                await client.dispatch(tenant_id=tenant, batch_size=5),
                await client.route(
                    tenant_id=tenant, lead_id=lead, phone_id=phone, message_type="FOLLOWUP", payload={}
                ),
                await client.allocate_phone(tenant_id=tenant, lead_id=lead),
                await client.select_channel(tenant_id=tenant, lead_id=lead),
            ]
            for job in jobs:
                await job.result(timeout=20)
        outputs = [process.output() for process in processes]
    finally:
        for process in processes:
            await process.stop()
        await own.aclose()

    for output in outputs:
        assert lines(output, r"\| WARNING +\|.*Redis unreachable") == 1, output
        assert lines(output, r"\| INFO +\|.*Redis reachable again after") == 1, output
        noise = re.findall(r"^.*\| (?:WARNING|ERROR|CRITICAL) +\|.*$", output, flags=re.MULTILINE)
        assert len(noise) == 1, noise
