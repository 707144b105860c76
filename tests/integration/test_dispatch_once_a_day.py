"""One message per lead, step and tenant-local day, whatever REDISPATCH_AFTER_S, and every one counted.

The downstream sender here consumes a job and keeps no result (arq's keep_result=0), and does not set
the lead's next action: the worst case the guarantee must survive. A second job for the same step on the
same day would carry the same id, which arq then accepts, and the quota would count it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.domain.quota import quota_date
from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, quota_key
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps, close_deps
from tests.support.clock import OPEN_HOURS
from tests.support.factories import Factory
from tests.support.jobs import queued, run_dispatch
from tests.support.services import make_settings
from tests.support.tenants import ALWAYS_OPEN


@pytest.fixture
async def hourly(deps: Deps, clock: FixedClock) -> AsyncIterator[Deps]:
    """The job's resources with REDISPATCH_AFTER_S=3600, on the test's clock."""
    built = await build_deps(make_settings(redispatch_after_s=3600), clock=clock)
    try:
        yield built
    finally:
        await close_deps(built)


async def consume_without_result(redis: Redis, queue_name: str) -> list[str]:
    """What a sender with keep_result=0 leaves behind a job it ran: nothing."""
    job_ids = await queued(redis, queue_name)
    for job_id in job_ids:
        await redis.zrem(queue_name, job_id)
        await redis.delete(ARQ_JOB_PREFIX + job_id)
        assert not await redis.exists(ARQ_RESULT_PREFIX + job_id)
    return job_ids


async def whatsapp_lead(factory: Factory, **tenant: object) -> tuple[UUID, UUID, UUID]:
    tenant_id = await factory.tenant(**tenant)
    phone = await factory.phone(tenant_id, phone_number="+40721000011")
    lead = await factory.lead(tenant_id)
    return tenant_id, phone, lead


async def test_an_hourly_redispatch_sends_no_second_message_the_same_day(
    hourly: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    # About the tenant-local day, so on a known Wednesday, 10:00 in Bucharest, in the default window.
    clock.now = OPEN_HOURS
    tenant, phone, lead = await whatsapp_lead(factory)
    today = quota_date(OPEN_HOURS, "Europe/Bucharest")

    first = await run_dispatch(hourly, tenant, job_id="tick-1")
    sent = await consume_without_result(redis, "q:wa:phone_11")
    clock.now = OPEN_HOURS + timedelta(hours=2)  # 12:00 the same Wednesday, the window still open
    again = await run_dispatch(hourly, tenant, job_id="tick-2")

    assert first["dispatchedToWhatsApp"] == 1
    assert sent == [f"wa:{tenant}:{lead}:-:0:{today}"]
    assert await queued(redis, "q:wa:phone_11") == []  # no second job with the same id
    assert again["totalEligibleLeads"] == 0
    assert int(await redis.get(quota_key(phone, today))) == 1  # one message, counted once
    next_action = (await factory.journey(tenant, lead))["next_action_at"]
    assert next_action == datetime(2026, 11, 25, 22, 0, tzinfo=UTC)  # Thursday 00:00 in Bucharest


async def test_on_the_25_hour_day_a_lead_waits_for_the_next_date(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant, phone, lead = await whatsapp_lead(factory, **ALWAYS_OPEN)
    clock.now = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)  # 00:30 on Sunday 25 October, clocks go back

    await run_dispatch(deps, tenant, job_id="tick-1")
    sent = await consume_without_result(redis, "q:wa:phone_11")
    clock.now += timedelta(days=1, minutes=5)  # 23:35 the same Sunday, REDISPATCH_AFTER_S (24 h) past
    late = await run_dispatch(deps, tenant, job_id="tick-2")
    clock.now = datetime(2026, 10, 25, 22, 0, tzinfo=UTC)  # Monday 00:00: a new date, a new id
    monday = await run_dispatch(deps, tenant, job_id="tick-3")

    assert sent == [f"wa:{tenant}:{lead}:-:0:2026-10-25"]
    assert late["totalEligibleLeads"] == 0
    assert [job["jobId"] for job in monday["jobsCreated"]] == [f"wa:{tenant}:{lead}:-:0:2026-10-26"]
    assert int(await redis.get(quota_key(phone, datetime(2026, 10, 25).date()))) == 1
    assert int(await redis.get(quota_key(phone, datetime(2026, 10, 26).date()))) == 1
