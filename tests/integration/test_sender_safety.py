"""Sender safety in the jobs (issue 10), each rule on its own: pacing inside the window, a window too
short for the batch, warm-up limits in dispatch, allocate_phone and route, and route's pace."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from src.contracts import PhoneAllocationResult, RouterResult
from src.jobs.allocate_phone import allocate_phone
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX, quota_key
from src.redis_io.codec import loads
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory, phone_on_warm_up_day_3
from tests.support.jobs import checked, job_ctx, queued, run_dispatch
from tests.support.tenants import ALWAYS_OPEN

# A Wednesday in Bucharest (UTC+2), not a holiday: 10:00 and 17:55 local, in a 09:00-18:00 window.
MORNING = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
FIVE_TO_CLOSE = datetime(2026, 11, 25, 15, 55, tzinfo=UTC)
OPENS, CLOSES = datetime(2026, 11, 25, 7, 0, tzinfo=UTC), datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
WORKING_HOURS = {"send_window_start": time(9), "send_window_end": time(18)}


def scheduled(result: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(job["scheduledAt"]) for job in result["jobsCreated"]]


async def test_ten_leads_on_one_phone_are_spaced_by_the_min_gap_inside_the_window(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    clock.now = MORNING
    tenant = await factory.tenant(**WORKING_HOURS, wa_min_gap_s=60, wa_jitter_s=30)
    await factory.phone(tenant, phone_number="+40721000031")
    await factory.leads(tenant, 10)

    result = await run_dispatch(deps, tenant)

    times = sorted(scheduled(result))
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert result["dispatchedToWhatsApp"] == 10
    assert times[0] == MORNING
    assert all(timedelta(seconds=60) <= gap <= timedelta(seconds=90) for gap in gaps), gaps
    assert len(set(gaps)) > 1  # the jitter varies
    assert all(OPENS <= at < CLOSES for at in times)
    # Each job waits in its queue scored with its slot (arq's _defer_until), its payload saying when.
    scores = dict(await redis.zrange("q:wa:phone_31", 0, -1, withscores=True))
    first = result["jobsCreated"][0]
    for job in result["jobsCreated"]:
        at = datetime.fromisoformat(job["scheduledAt"])
        apart_ms = (at - datetime.fromisoformat(first["scheduledAt"])) // timedelta(milliseconds=1)
        assert scores[job["jobId"].encode()] - scores[first["jobId"].encode()] == apart_ms
        payload = loads(await redis.get(ARQ_JOB_PREFIX + job["jobId"]))["a"][0]
        assert datetime.fromisoformat(payload["scheduledAt"]) == at
    recorded = await factory.scalar(
        "SELECT array_agg(scheduled_at ORDER BY scheduled_at) FROM outreach_messages"
    )
    assert recorded == times  # the evidence row records the scheduled time


async def test_new_contacts_take_the_earlier_slots_of_a_batch(
    deps: Deps, factory: Factory, clock: FixedClock
) -> None:
    clock.now = MORNING
    tenant = await factory.tenant(**WORKING_HOURS, wa_min_gap_s=60, wa_jitter_s=0)
    phone = await factory.phone(tenant)
    follow_ups = await factory.leads(tenant, 3, engagement_stage="CONTACTED_WA", assigned_phone_id=phone)
    new = await factory.leads(tenant, 3)

    result = await run_dispatch(deps, tenant)

    slot_of = {UUID(d["leadId"]): datetime.fromisoformat(d["scheduledAt"]) for d in result["decisions"]}
    assert max(slot_of[lead] for lead in new) < min(slot_of[lead] for lead in follow_ups)


async def test_a_window_closing_in_5_minutes_takes_only_what_fits(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    clock.now = FIVE_TO_CLOSE
    tenant = await factory.tenant(**WORKING_HOURS, wa_min_gap_s=60, wa_jitter_s=0)
    phone = await factory.phone(tenant)
    await factory.leads(tenant, 10)

    result = await run_dispatch(deps, tenant)

    waiting = [d for d in result["decisions"] if d["outcome"] == "SKIPPED_WINDOW_FULL"]
    assert (result["dispatchedToWhatsApp"], result["skippedWindowFull"]) == (5, 5)
    assert [at - FIVE_TO_CLOSE for at in sorted(scheduled(result))] == [
        timedelta(minutes=m) for m in range(5)
    ]
    assert {d["reason"] for d in waiting} == {"WINDOW_FULL"}
    assert all(d["jobId"] is None and d["scheduledAt"] is None for d in waiting)
    assert int(await redis.get(quota_key(phone, date(2026, 11, 25)))) == 5
    # The ones that did not fit wait, unmarked, for the next window: Thursday 09:00.
    for lead in (UUID(d["leadId"]) for d in waiting):
        journey = await factory.journey(tenant, lead)
        assert journey["last_dispatched_at"] is None
        assert journey["assigned_phone_id"] is None
        assert journey["next_action_at"] == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


async def test_a_phone_on_warm_up_day_3_takes_exactly_its_effective_limit(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)  # unpaced: warm-up alone, no pacing in the way
    phone = await phone_on_warm_up_day_3(factory, tenant, today)
    await factory.leads(tenant, 60)

    result = await run_dispatch(deps, tenant, batchSize=60)

    assert (result["dispatchedToWhatsApp"], result["skippedQuotaExceeded"]) == (40, 20)  # 20 + 2 x 10
    assert int(await redis.get(quota_key(phone, today))) == 40
    again = await run_dispatch(deps, tenant, job_id="dispatch-2")
    assert again["dispatchedToWhatsApp"] == 0


async def test_allocate_phone_and_route_read_the_effective_limit(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    warming = await factory.phone(tenant, daily_limit=200, warmup_started_on=today, warmup_initial_limit=5)
    lead = await factory.lead(tenant, assigned_phone_id=warming)
    new_lead = await factory.lead(tenant)
    await redis.set(quota_key(warming, today), 5)  # day 1 of the warm-up: 5, all used

    allocated = checked(
        PhoneAllocationResult,
        await allocate_phone(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(new_lead)}),
    )
    routed = checked(RouterResult, await route(job_ctx(deps, job_id="r-1"), follow_up(tenant, lead, warming)))

    assert allocated["allocatedPhoneId"] is None
    assert allocated["reason"].startswith("NO_PHONE_WITH_QUOTA")
    assert routed["routed"] is False
    assert routed["reason"].startswith("QUOTA_EXHAUSTED")


def follow_up(tenant: UUID, lead: UUID, phone: UUID, **extra: Any) -> dict[str, Any]:
    return {
        "tenantId": str(tenant),
        "leadId": str(lead),
        "phoneId": str(phone),
        "messageType": "FOLLOWUP",
        "payload": {"text": "Revin"},
        **extra,
    }


async def test_route_paces_through_the_phones_schedule_unless_send_now(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    clock.now = MORNING
    tenant = await factory.tenant(**WORKING_HOURS, wa_min_gap_s=120, wa_jitter_s=0)
    phone = await factory.phone(tenant, phone_number="+40721000051")
    leads = await factory.leads(tenant, 3, assigned_phone_id=phone)

    results = [
        checked(
            RouterResult, await route(job_ctx(deps, job_id=f"r-{n}"), follow_up(tenant, lead, phone, **extra))
        )
        for n, (lead, extra) in enumerate(zip(leads, ({"sendNow": True}, {}, {}), strict=True))
    ]

    reply, paced, after = results
    assert (reply["deferred"], reply["scheduledAt"]) == (False, None)  # a reply goes at once
    # The reply took the phone's gap like any message: the paced ones after it keep the gap.
    assert paced["deferred"] is True
    assert datetime.fromisoformat(paced["scheduledAt"]) == MORNING + timedelta(minutes=2)
    assert datetime.fromisoformat(after["scheduledAt"]) == MORNING + timedelta(minutes=4)
    assert await queued(redis, "q:wa:phone_51:followup") == ["routed:r-0", "routed:r-1", "routed:r-2"]
    scores = [score for _, score in await redis.zrange("q:wa:phone_51:followup", 0, -1, withscores=True)]
    # arq's _defer_until: scored by the host's clock, which runs on while the test's stands still (the
    # few ms each route job takes).
    assert [round((later - scores[0]) / 1000) for later in scores] == [0, 120, 240]


async def test_route_refuses_with_window_full_and_portfolio_limit(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    clock.now = FIVE_TO_CLOSE
    tenant = await factory.tenant(**WORKING_HOURS, wa_min_gap_s=300, wa_jitter_s=0, wa_portfolio_limit=2)
    phone = await factory.phone(tenant)
    other = await factory.phone(tenant)
    a, b, c = await factory.leads(tenant, 3)

    first = await route(job_ctx(deps, job_id="r-a"), follow_up(tenant, a, phone))
    full = await route(job_ctx(deps, job_id="r-b"), follow_up(tenant, b, phone))
    on_other = await route(job_ctx(deps, job_id="r-b2"), follow_up(tenant, b, other))
    over_budget = await route(job_ctx(deps, job_id="r-c"), follow_up(tenant, c, other, sendNow=True))

    assert first["routed"] is True
    assert (full["routed"], full["reason"].split(":")[0]) == (False, "WINDOW_FULL")
    assert on_other["routed"] is True
    assert (over_budget["routed"], over_budget["reason"].split(":")[0]) == (False, "PORTFOLIO_LIMIT")
    assert int(await redis.get(quota_key(other, date(2026, 11, 25)))) == 1
