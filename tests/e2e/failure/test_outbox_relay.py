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

from datetime import date

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.jobs.dispatch import dispatch
from src.names import ARQ_IN_PROGRESS_PREFIX
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps, close_deps
from tests.support.crashes import dispatch_killed_at
from tests.support.factories import Factory, tenant_with_leads
from tests.support.invariants import ledger, queued_outreach_jobs
from tests.support.jobs import job_ctx
from tests.support.services import make_settings
from tests.support.workers import Workers, wait_for_line

PATIENT = {"DISPATCH_CRON_ENABLED": "false", "OUTBOX_RELAY_GRACE_S": "3600"}


async def test_the_rerun_of_a_killed_dispatch_relays_its_own_batch_at_once(
    factory: Factory, engine: AsyncEngine, redis: Redis, client: OutreachClient, workers: Workers, today: date
) -> None:
    tenant = await tenant_with_leads(factory, 20)
    killed = await dispatch_killed_at(
        "after_commit", workers, redis, client, tenant, job_id="killed-dispatch", batch_size=100, **PATIENT
    )
    left = await ledger(engine, redis, today)
    assert (len(left.marked), left.outbox, await queued_outreach_jobs(redis)) == (20, 20, 0)

    await redis.pexpire(ARQ_IN_PROGRESS_PREFIX + "killed-dispatch", 1)
    async with workers.new("DispatchSettings", **PATIENT) as survivor:
        await survivor.wait_healthy(redis)
        rerun = await killed.result(timeout=20)
        state = await client.job_state("killed-dispatch")
        log = survivor.output()

    assert state.job_try == 2
    assert rerun.relayed_from_outbox == 20
    assert rerun.total_eligible_leads == 0
    assert "relayed 20 jobs of its own earlier try (dispatch killed-dispatch" in log
    book = await ledger(engine, redis, today)
    book.assert_each_lead_once(20)


async def test_a_dead_dispatchers_batch_goes_with_the_next_dispatch_and_a_running_ones_stays(
    deps: Deps,
    factory: Factory,
    engine: AsyncEngine,
    redis: Redis,
    client: OutreachClient,
    workers: Workers,
    clock: FixedClock,
    today: date,
) -> None:
    tenant = await tenant_with_leads(factory, 20)
    dead = await dispatch_killed_at(
        "after_commit", workers, redis, client, tenant, job_id="dead-dispatch", batch_size=10, **PATIENT
    )
    # One job at a time: paused on live-dispatch, this worker cannot start dead-dispatch's rerun.
    paused = workers.new(
        "DispatchSettings",
        CHAOS_PAUSE_AT="after_commit",
        CHAOS_PAUSE_S="10",
        DISPATCH_CONCURRENCY="1",
        **PATIENT,
    )
    # The next dispatch of the tenant, in this process, on the test's clock (the workers' too).
    next_tick = await build_deps(make_settings(outbox_relay_grace_s=3600), clock=clock)
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
    book.assert_each_lead_once(20)
