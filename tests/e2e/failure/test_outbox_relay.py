"""A dispatch worker SIGKILLed between its commit and its enqueue: its batch goes out without any clock.

OUTBOX_RELAY_GRACE_S is an hour here, so whatever is relayed within the test is relayed because the
dispatch that committed it is known dead, never because it is old:
- arq's rerun of the killed job (try 2) relays the batch of its own earlier try first thing;
- another dispatch of the tenant relays the batch of a job whose arq in-progress key is gone, and leaves
  alone the batch of a job that is still running (paused right after its commit on another worker).
arq lets an in-progress key expire 40 s after a killed job started (the 30 s timeout + 10 s); the tests
expire it at once instead of waiting.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import EnqueuedJob, OutreachClient
from src.contracts import DispatchResult
from src.domain.quota import quota_date
from src.jobs.dispatch import dispatch
from src.names import ARQ_IN_PROGRESS_PREFIX
from src.runtime.deps import Deps, build_deps, close_deps
from tests.conftest import TEST_REDIS_URL, job_ctx, make_settings
from tests.factories import Factory
from tests.failure.test_chaos import ALWAYS_OPEN
from tests.failure.test_dispatch_crash import queued_outreach_jobs, wait_for_line
from tests.invariants import ledger
from tests.workers import WorkerProcess

PATIENT = {"DISPATCH_CRON_ENABLED": "false", "OUTBOX_RELAY_GRACE_S": "3600"}


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[OutreachClient]:
    async with OutreachClient.connect(TEST_REDIS_URL) as connected:
        yield connected


async def tenant_with_leads(factory: Factory, count: int) -> UUID:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    await factory.leads(tenant, count)
    return tenant


async def kill_after_commit(
    client: OutreachClient, redis: Redis, tenant: UUID, job_id: str, batch_size: int
) -> EnqueuedJob[DispatchResult]:
    """Run `job_id` on a worker that pauses right after its commit, and SIGKILL the worker there."""
    doomed = WorkerProcess("DispatchSettings", CHAOS_PAUSE_AT="after_commit", CHAOS_PAUSE_S="30", **PATIENT)
    doomed.start()
    try:
        await doomed.wait_healthy(redis)
        killed = await client.dispatch(tenant_id=tenant, batch_size=batch_size, job_id=job_id)
        await wait_for_line(doomed, "chaos: pausing")
        doomed.signal(signal.SIGKILL)
        assert await doomed.wait_exit(timeout=10) == -signal.SIGKILL
    finally:
        doomed.kill()
    return killed


async def test_the_rerun_of_a_killed_dispatch_relays_its_own_batch_at_once(
    factory: Factory, engine: AsyncEngine, redis: Redis, client: OutreachClient
) -> None:
    tenant = await tenant_with_leads(factory, 20)
    today = quota_date(datetime.now(UTC), "Europe/Bucharest")
    killed = await kill_after_commit(client, redis, tenant, "killed-dispatch", batch_size=100)
    left = await ledger(engine, redis, today)
    assert (len(left.marked), left.outbox, await queued_outreach_jobs(redis)) == (20, 20, 0)

    await redis.pexpire(ARQ_IN_PROGRESS_PREFIX + "killed-dispatch", 1)
    async with WorkerProcess("DispatchSettings", **PATIENT) as survivor:
        await survivor.wait_healthy(redis)
        rerun = await killed.result(timeout=20)
        state = await client.job_state("killed-dispatch")
        log = survivor.output()

    assert state.job_try == 2
    assert rerun.relayed_from_outbox == 20
    assert rerun.total_eligible_leads == 0
    assert "relayed 20 jobs of its own earlier try (dispatch killed-dispatch" in log
    book = await ledger(engine, redis, today)
    book.assert_clean()
    assert len(book.jobs_per_lead) == 20


async def test_a_dead_dispatchers_batch_goes_with_the_next_dispatch_and_a_running_ones_stays(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, client: OutreachClient
) -> None:
    tenant = await tenant_with_leads(factory, 20)
    today = quota_date(datetime.now(UTC), "Europe/Bucharest")
    dead = await kill_after_commit(client, redis, tenant, "dead-dispatch", batch_size=10)
    # One job at a time: paused on live-dispatch, this worker cannot start dead-dispatch's rerun.
    paused = WorkerProcess(
        "DispatchSettings",
        CHAOS_PAUSE_AT="after_commit",
        CHAOS_PAUSE_S="10",
        DISPATCH_CONCURRENCY="1",
        **PATIENT,
    )
    # The next dispatch of the tenant, in this process, on the workers' clock.
    next_tick = await build_deps(make_settings(outbox_relay_grace_s=3600))
    async with paused:
        await paused.wait_healthy(redis)
        live = await client.dispatch(tenant_id=tenant, batch_size=10, job_id="live-dispatch")
        await wait_for_line(paused, "chaos: pausing")
        await redis.pexpire(ARQ_IN_PROGRESS_PREFIX + "dead-dispatch", 1)  # dead-dispatch is provably dead
        try:
            tick = await dispatch(
                job_ctx(next_tick, job_id="next-tick"), {"correlationId": "t", "tenantId": str(tenant)}
            )
        finally:
            await close_deps(next_tick)
        waiting = await ledger(engine, redis, today)
        published = await live.result(timeout=30)
        rerun = await dead.result(timeout=30)

    assert tick["relayedFromOutbox"] == 10  # dead-dispatch's, an hour before the grace
    assert tick["totalEligibleLeads"] == 0
    assert waiting.outbox == 10  # live-dispatch's, left to live-dispatch
    assert len(published.jobs_created) == 10
    assert published.relayed_from_outbox == 0
    assert (rerun.relayed_from_outbox, rerun.total_eligible_leads) == (0, 0)
    book = await ledger(engine, redis, today)
    book.assert_clean()
    assert len(book.jobs_per_lead) == 20
