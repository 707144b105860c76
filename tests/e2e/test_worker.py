"""The real `arq src.worker.Settings` process runs every job through its queue."""

from __future__ import annotations

import asyncio
import json
import signal
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.client import JobFailed, OutreachClient
from src.names import ALL_QUEUES_HEALTH_KEY, Queue, health_key
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers

PER_QUEUE = ("DispatchSettings", "RouterSettings", "AllocatorSettings", "SelectorSettings")


async def test_one_process_serves_all_four_queues(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000077")
    lead = await factory.lead(tenant)
    await factory.leads(tenant, 3)

    async with workers.new("Settings") as worker:
        await worker.wait_healthy(redis)
        for settings in ("Settings", *PER_QUEUE):
            check = workers.check(settings)
            assert check.returncode == 0, check.stdout + check.stderr

        selected = await (await client.select_channel(tenant_id=tenant, lead_id=lead)).result(timeout=10)
        assert selected.selected_channel == "WHATSAPP"

        allocated = await (await client.allocate_phone(tenant_id=tenant, lead_id=lead)).result(timeout=10)
        assert (allocated.allocated_phone_id, allocated.allocation_type) == (phone, "NEW")

        routed_job = await client.route(
            tenant_id=tenant, lead_id=lead, phone_id=phone, message_type="FOLLOWUP", payload={"text": "Revin"}
        )
        routed = await routed_job.result(timeout=10)
        assert routed.target_queue == "q:wa:phone_77:followup"
        assert await redis.zscore("q:wa:phone_77:followup", f"routed:{routed_job.job_id}") is not None

        dispatched = await (await client.dispatch(tenant_id=tenant, batch_size=50)).result(timeout=20)
        assert dispatched.total_eligible_leads == 4
        assert dispatched.dispatched_to_whatsapp == 4
        assert len(dispatched.jobs_created) == 4
        assert await redis.zcard("q:wa:phone_77") == 4

        bad = await client.enqueue_raw("select_channel", {"tenantId": str(tenant), "leadId": "nope"})
        with pytest.raises(JobFailed) as failed:
            await bad.result(timeout=10)
        assert failed.value.error["fields"] == ["leadId"]
        state = await client.job_state(bad.job_id)
        assert (state.status, state.job_try, state.success) == ("complete", 1, False)

        logs = worker.output()
        assert f"job_id={routed_job.job_id}" in logs
        assert f"tenantId={tenant}" in logs

        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout=30) == 0

    assert not await redis.exists(ALL_QUEUES_HEALTH_KEY, *(health_key(q) for q in Queue))
    assert workers.check("Settings").returncode == 1


async def test_a_single_queue_settings_runs_that_queue_alone(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    lead = await factory.lead(tenant, company={"hlr_reachable": False})

    async with workers.new("SelectorSettings") as worker:
        await worker.wait_healthy(redis)
        result = await (await client.select_channel(tenant_id=tenant, lead_id=lead)).result(timeout=10)
        assert result.selected_channel == "EMAIL_COLD"
        allocation = await client.allocate_phone(tenant_id=tenant, lead_id=lead)
        assert await allocation.status() == "queued"  # nobody serves the allocator queue
        assert UUID(str(result.lead_id)) == lead
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout=30) == 0


async def test_callers_awaiting_many_jobs_at_once_each_get_their_own_result(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant, phone_number="+40721000078")
    reachable = await factory.leads(tenant, 20)
    unreachable = [await factory.lead(tenant, company={"hlr_reachable": False}) for _ in range(20)]
    # Enqueued before any worker runs, so that no result is there at the callers' own first read: every
    # one of them is delivered by the client's shared reads (src/redis_io/result_watch.py).
    jobs = [await client.select_channel(tenant_id=tenant, lead_id=lead) for lead in reachable + unreachable]
    bad = await client.enqueue_raw("select_channel", {"tenantId": str(tenant), "leadId": "nope"})
    waiting = [asyncio.create_task(job.result(timeout=30)) for job in jobs]
    failing = asyncio.create_task(bad.result(timeout=30))
    await asyncio.sleep(0.1)
    assert client.results.waiting == 41

    async with workers.new("SelectorSettings") as worker:
        results = await asyncio.gather(*waiting)
        with pytest.raises(JobFailed) as failed:
            await failing
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout=30) == 0

    assert [UUID(str(result.lead_id)) for result in results] == reachable + unreachable
    assert [result.selected_channel for result in results] == ["WHATSAPP"] * 20 + ["EMAIL_COLD"] * 20
    assert failed.value.error["fields"] == ["leadId"]
    assert client.results.waiting == 0


async def test_json_logs_are_one_object_per_line_from_the_first_line(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    lead = await factory.lead(tenant)
    async with workers.new("Settings", LOG_FORMAT="json") as worker:
        await worker.wait_healthy(redis)
        job = await client.select_channel(tenant_id=tenant, lead_id=lead, correlation_id="corr-json")
        await job.result(timeout=10)
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout=30) == 0
        output = worker.output()

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines[0]["message"].startswith("Starting worker")
    job_lines = [line for line in lines if line.get("job_id") == job.job_id]
    started = [line for line in job_lines if "→" in line["message"]]
    finished = [line for line in job_lines if "←" in line["message"]]
    assert started
    assert started[0]["queue"] == "outreach:channel:selector"
    assert finished
    # Once the job has read its input, every line of it carries the tenant and the correlation id.
    assert finished[0]["tenantId"] == str(tenant)
    assert finished[0]["correlationId"] == "corr-json"
