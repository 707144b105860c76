"""A worker process SIGKILLed in the middle of a dispatch: nothing lost, nothing doubled after the rerun.

The worker pauses at the named step only because the test sets CHAOS_PAUSE_AT (src/runtime/chaos.py), so the
kill lands exactly between two writes. The rerun is what production does: the next dispatch of the
tenant (the next cron tick), then arq running the killed job again once its in-progress key expires
(after the 30 s timeout + 10 s; the test expires it at once instead of waiting).
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.names import ARQ_IN_PROGRESS_PREFIX
from tests.support.crashes import dispatch_killed_at
from tests.support.factories import Factory
from tests.support.invariants import ledger, queued_outreach_jobs
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers

NO_CRON = {"DISPATCH_CRON_ENABLED": "false", "OUTBOX_RELAY_GRACE_S": "0"}


async def tenant_under_quota_pressure(factory: Factory) -> tuple[UUID, list[UUID], list[UUID]]:
    """50 WhatsApp leads for 2 phones of 20 sends each, and 10 e-mail-only leads: 40 + 10 go out."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phones = [await factory.phone(tenant, daily_limit=20) for _ in range(2)]
    leads = await factory.leads(tenant, 50, company={"email_status": "unknown"})
    leads += await factory.leads(tenant, 10, company={"hlr_reachable": False})
    return tenant, phones, leads


@pytest.mark.parametrize("step", ["after_reserve", "after_commit", "after_enqueue"])
async def test_sigkill_between_writes_loses_and_doubles_nothing(
    step: str,
    factory: Factory,
    engine: AsyncEngine,
    redis: Redis,
    client: OutreachClient,
    workers: Workers,
    today: date,
) -> None:
    tenant, phones, leads = await tenant_under_quota_pressure(factory)

    killed = await dispatch_killed_at(
        step, workers, redis, client, tenant, job_id="killed-dispatch", batch_size=100, **NO_CRON
    )

    # The state the kill left behind.
    left = await ledger(engine, redis, today)
    marked = len(left.marked)
    if step == "after_reserve":
        assert sum(left.counters.values()) == 40  # reserved
        assert (marked, left.outbox, await queued_outreach_jobs(redis)) == (0, 0, 0)
    elif step == "after_commit":
        assert (marked, left.outbox, await queued_outreach_jobs(redis)) == (50, 50, 0)
    else:
        assert (marked, left.outbox, await queued_outreach_jobs(redis)) == (50, 50, 50)

    async with workers.new("DispatchSettings", **NO_CRON) as survivor:
        await survivor.wait_healthy(redis)
        # The next tick for the tenant: relays what the outbox holds, dispatches what is still due.
        tick = await (await client.dispatch(tenant_id=tenant, batch_size=100, job_id="next-tick")).result(
            timeout=20
        )
        # arq runs the killed job again once its in-progress key is gone.
        await redis.pexpire(ARQ_IN_PROGRESS_PREFIX + "killed-dispatch", 1)
        rerun = await killed.result(timeout=20)
        state = await client.job_state("killed-dispatch")

    assert state.job_try == 2
    assert rerun.total_eligible_leads == 0
    if step == "after_reserve":
        assert tick.dispatched_to_whatsapp == 40
        assert tick.skipped_quota_exceeded == 10
        assert tick.dispatched_to_email == 10
    else:
        assert tick.relayed_from_outbox == 50
        assert tick.total_eligible_leads == 0

    book = await ledger(engine, redis, today)
    book.assert_each_lead_once(50)  # 40 WhatsApp + 10 e-mail: nobody lost
    assert sorted(book.counters.values()) == [20, 20]
    assert sorted(book.whatsapp_jobs_per_phone.values()) == [20, 20]
    assert {str(p) for p in phones} == set(book.counters)
    assert set(book.jobs_per_lead) <= {str(lead) for lead in leads}
