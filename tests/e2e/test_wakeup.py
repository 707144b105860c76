"""An idle worker process picks a job up when it is enqueued, not at its next poll (src/runtime/wakeup.py).

The workers here wait IDLE_POLL_S=5 between polls of an empty queue: a job that had to wait for a poll
would take seconds, one woken by its enqueuer milliseconds. The margins are wide on purpose: these tests
check which of the two happens, not how fast.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from redis.asyncio import Redis

from src.client import OutreachClient
from src.names import Function, Queue
from src.runtime.wakeup import wake_workers
from tests.support.factories import Factory
from tests.support.services import command_calls
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers

SLOW_IDLE_POLL = {"IDLE_POLL_S": "5", "DISPATCH_CRON_ENABLED": "false"}


async def _enqueue_without_wake_up(arq_redis: ArqRedis, tenant: UUID, lead: UUID, **options: Any) -> Job:
    """A select_channel job as a plain arq enqueuer writes it: no wake-up message."""
    job = await arq_redis.enqueue_job(
        Function.SELECT_CHANNEL.value,
        {"tenantId": str(tenant), "leadId": str(lead)},
        _queue_name=Queue.SELECTOR.value,
        **options,
    )
    assert job is not None
    return job


@pytest.fixture
async def lead_of(factory: Factory) -> tuple[UUID, UUID]:
    """An always-open tenant and one lead of it: what a select_channel job needs."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    return tenant, await factory.lead(tenant)


async def test_an_enqueue_wakes_the_idle_worker(
    lead_of: tuple[UUID, UUID], redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant, lead = lead_of
    async with workers.new("SelectorSettings", **SLOW_IDLE_POLL) as worker:
        await worker.wait_healthy(redis)
        await asyncio.sleep(0.5)  # the worker is in its idle wait
        started = time.monotonic()
        for _ in range(3):  # after each job the worker waits idle again, 5 s unless woken
            selected = await (await client.select_channel(tenant_id=tenant, lead_id=lead)).result(timeout=20)
            assert selected.selected_channel in ("WHATSAPP", "EMAIL_COLD")
        assert time.monotonic() - started < 4.0


async def test_a_plain_arq_enqueue_without_a_wake_up_still_runs(
    lead_of: tuple[UUID, UUID], redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    """A message is only a hint: a job that came without one is found by the idle poll."""
    tenant, lead = lead_of
    arq_redis: ArqRedis = client.redis
    async with workers.new("SelectorSettings", IDLE_POLL_S="0.2") as worker:
        await worker.wait_healthy(redis)
        job = await _enqueue_without_wake_up(arq_redis, tenant, lead)
        assert (await job.result(timeout=20, poll_delay=0.05))["leadId"] == str(lead)


async def test_a_deferred_job_runs_when_due_not_at_the_next_idle_poll(
    lead_of: tuple[UUID, UUID], redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant, lead = lead_of
    arq_redis: ArqRedis = client.redis
    async with workers.new("SelectorSettings", **SLOW_IDLE_POLL) as worker:
        await worker.wait_healthy(redis)
        started = time.monotonic()
        job = await _enqueue_without_wake_up(arq_redis, tenant, lead, _defer_by=1.0)
        # The wake-up makes the worker read the queue's earliest due time and wait for that.
        await wake_workers(client.redis, Queue.SELECTOR.value)
        await job.result(timeout=20, poll_delay=0.05)
        assert 0.9 < time.monotonic() - started < 4.0


async def test_a_job_enqueued_right_after_another_is_picked_up_at_once_not_at_the_next_poll(
    lead_of: tuple[UUID, UUID], redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    """An ops script that awaits each job before it enqueues the next: the worker took the last job a
    moment ago, and between two polls that take jobs it waits POLL_DELAY_S (3 s here) unless woken."""
    tenant, lead = lead_of
    async with workers.new("SelectorSettings", POLL_DELAY_S="3", **SLOW_IDLE_POLL) as worker:
        await worker.wait_healthy(redis)
        await asyncio.sleep(0.5)  # the worker is in its idle wait
        started = time.monotonic()
        for _ in range(3):
            selected = await (await client.select_channel(tenant_id=tenant, lead_id=lead)).result(timeout=20)
            assert selected.selected_channel in ("WHATSAPP", "EMAIL_COLD")
        assert time.monotonic() - started < 2.0


async def zrangebyscore_calls(redis: Redis) -> int:
    """arq's polls (ZRANGEBYSCORE) the Redis server has run: the workers' only use of that command."""
    return (await command_calls(redis)).get("zrangebyscore", 0)


async def test_a_stream_of_enqueues_costs_a_poll_per_wake_up_gap_not_a_poll_per_job(
    lead_of: tuple[UUID, UUID], redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    """An ops script enqueueing in a loop, each enqueue publishing a wake-up: the worker polls at most
    once per WAKE_GAP_SHARE x POLL_DELAY_S (200 ms here), taking the jobs that came meanwhile together,
    and still long before its next poll was due."""
    tenant, lead = lead_of
    async with workers.new("SelectorSettings", POLL_DELAY_S="1", **SLOW_IDLE_POLL) as worker:
        await worker.wait_healthy(redis)
        await asyncio.sleep(0.5)  # the worker is in its idle wait
        polls_before = await zrangebyscore_calls(redis)
        started = time.monotonic()
        jobs = []
        for _ in range(40):  # 2 s, one enqueue every 50 ms
            jobs.append(await client.select_channel(tenant_id=tenant, lead_id=lead))
            await asyncio.sleep(0.05)
        for job in jobs:
            await job.result(timeout=20)
        took = time.monotonic() - started
        polls = await zrangebyscore_calls(redis) - polls_before

    # 2 s of enqueues and the last job's pick-up: about 11 polls 200 ms apart (one per job without the
    # gap), and the last job done well before a 1 s poll delay would have let it start.
    assert polls <= 16, polls
    assert took < 2.0 + 0.6
