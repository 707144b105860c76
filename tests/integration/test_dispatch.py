from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from src.domain.quota import quota_date
from src.errors import InvalidJobInput, NotFound
from src.jobs.dispatch import dispatch
from src.names import ARQ_JOB_PREFIX, quota_key
from src.redis_io.codec import loads
from src.results import instant
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps, close_deps
from tests.support.clock import OPEN_HOURS, as_slot
from tests.support.factories import CONSENT_EVIDENCE, Factory, tenant_with_leads
from tests.support.jobs import deps_with, job_ctx, queued, run_dispatch
from tests.support.services import make_settings
from tests.support.tenants import ALWAYS_OPEN


async def job_payload(redis: Redis, job_id: str) -> dict[str, Any]:
    return loads(await redis.get(ARQ_JOB_PREFIX + job_id))  # type: ignore[no-any-return]


async def snapshot(factory: Factory, redis: Redis) -> tuple[Any, ...]:
    """Everything a dispatch may change: journey rows, outbox, all Redis keys."""
    rows = await factory.scalar("SELECT string_agg(j::text, '|' ORDER BY id) FROM gold_lead_journey j")
    outbox = await factory.scalar("SELECT count(*) FROM dispatch_outbox")
    keys = sorted(await redis.keys("*"))
    return rows, outbox, keys


async def test_every_lead_situation_in_one_batch(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000011")
    banned = await factory.phone(tenant, phone_number="+40721000012", status="BANNED")
    whatsapp = await factory.lead(
        tenant, company={"telefon_principal": "0722 111 222", "denumire": "Agro Nord SRL"}
    )
    email_only = await factory.lead(tenant, company={"hlr_reachable": False})
    warm_email = await factory.lead(
        tenant, company={"telefon_principal": None}, engagement_stage="CONTACTED_EMAIL", sequence_step=2
    )
    opted_out = await factory.lead(tenant, whatsapp_opted_out=True, email_opted_out=True)
    on_banned = await factory.lead(tenant, assigned_phone_id=banned, engagement_stage="CONTACTED_WA")
    held = await factory.lead(tenant, requires_human_review=True)
    converted = await factory.lead(tenant, engagement_stage="CONVERTED")
    later = await factory.lead(tenant, next_action_at=clock.now + timedelta(hours=1))

    result = await run_dispatch(deps, tenant)

    counts = {
        "totalEligibleLeads": 5,
        "dispatchedToWhatsApp": 2,
        "dispatchedToEmail": 2,
        "skippedQuotaExceeded": 0,
        "skippedOutsideHours": 0,
        "skippedNoChannel": 1,
        "skippedHumanReview": 1,
    }
    assert {key: result[key] for key in counts} == counts
    decisions = {UUID(d["leadId"]): d for d in result["decisions"]}
    assert set(decisions) == {whatsapp, email_only, warm_email, opted_out, on_banned}
    assert not {held, converted, later} & set(decisions)
    assert (decisions[whatsapp]["outcome"], decisions[whatsapp]["reason"]) == ("DISPATCHED", "NEW_PHONE")
    assert decisions[on_banned]["reason"] == "FALLBACK_STICKY_UNAVAILABLE"
    assert decisions[on_banned]["phoneId"] == str(phone)
    assert (decisions[opted_out]["outcome"], decisions[opted_out]["reason"]) == (
        "SKIPPED_NO_CHANNEL",
        "OPTED_OUT",
    )
    assert decisions[email_only]["channel"] == "EMAIL_COLD"
    assert decisions[warm_email]["channel"] == "EMAIL_WARM"

    wa_job = f"wa:{tenant}:{whatsapp}:-:0:{today}"
    assert sorted(await queued(redis, "q:wa:phone_11")) == sorted(
        [wa_job, f"wa:{tenant}:{on_banned}:-:0:{today}"]
    )
    assert await queued(redis, "q:wa:phone_12") == []
    assert await queued(redis, "q:email:cold") == [f"email:{tenant}:{email_only}:-:0:{today}"]
    assert await queued(redis, "q:email:warm") == [f"email:{tenant}:{warm_email}:-:2:{today}"]
    job = await job_payload(redis, wa_job)
    assert job["f"] == "send-whatsapp-initial"
    assert job["a"][0] == {
        "correlationId": "corr-1",
        "tenantId": str(tenant),
        "leadId": str(whatsapp),
        "isNewContact": True,
        "sequenceId": None,
        "sequenceStep": 0,
        "dispatchJobId": "dispatch-1",
        "lawfulBasis": CONSENT_EVIDENCE,
        "phoneId": str(phone),
        "recipientPhone": "+40722111222",
        "scheduledAt": instant(as_slot(clock.now)),  # the phone's first slot of the day: now
        "personalization": {
            "companyName": "Agro Nord SRL",
            "contactName": "Ion Popescu",
            "judet": "Cluj",
            "localitate": "Turda",
        },
    }
    assert {j["jobId"] for j in result["jobsCreated"]} == {
        d["jobId"] for d in result["decisions"] if d["jobId"]
    }
    assert int(await redis.get(quota_key(phone, today))) == 2

    journey = await factory.journey(tenant, on_banned)
    assert journey["assigned_phone_id"] == phone
    assert journey["last_dispatched_at"] == clock.now
    assert journey["last_channel_used"] == "WHATSAPP"
    assert journey["next_action_at"] == clock.now + timedelta(days=1)
    assert (await factory.journey(tenant, opted_out))["next_action_at"] == clock.now + timedelta(hours=6)
    assert (await factory.journey(tenant, held))["next_action_at"] is None
    assert await factory.scalar("SELECT count(*) FROM dispatch_outbox") == 0


async def test_an_address_goes_out_as_stored_without_the_whitespace_around_it(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    padded = await factory.lead(
        tenant, company={"hlr_reachable": False, "email_principal": "  office@fermă.ro \u00a0"}
    )
    spaced = await factory.lead(
        tenant, company={"hlr_reachable": False, "email_principal": "  ion popescu@fermă.ro \u00a0"}
    )

    result = await run_dispatch(deps, tenant)

    outcomes = {UUID(d["leadId"]): (d["outcome"], d["reason"]) for d in result["decisions"]}
    assert outcomes == {
        padded: ("DISPATCHED", "BEST_SCORE"),
        spaced: ("SKIPPED_NO_CHANNEL", "NO_VERIFIED_CONTACT"),
    }
    job = await job_payload(redis, f"email:{tenant}:{padded}:-:0:{today}")
    assert job["a"][0]["recipientEmail"] == "office@fermă.ro"
    assert await queued(redis, "q:email:cold") == [f"email:{tenant}:{padded}:-:0:{today}"]


async def test_dispatching_twice_sends_nothing_twice(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await tenant_with_leads(factory, 30)

    first = await run_dispatch(deps, tenant, job_id="d1")
    clock.now += timedelta(minutes=5)
    second = await run_dispatch(deps, tenant, job_id="d2")

    assert first["dispatchedToWhatsApp"] == 30
    assert second["totalEligibleLeads"] == 0
    assert second["jobsCreated"] == []


async def test_concurrent_dispatches_for_one_tenant_share_no_lead(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    for _ in range(3):
        await factory.phone(tenant)
    leads = await factory.leads(tenant, 120)

    results = await asyncio.gather(
        *(run_dispatch(deps, tenant, job_id=f"d{n}", batchSize=40) for n in range(4))
    )

    seen = Counter(d["leadId"] for r in results for d in r["decisions"])
    assert all(count == 1 for count in seen.values()), seen.most_common(3)
    assert set(seen) == {str(lead) for lead in leads}
    jobs = [j["jobId"] for r in results for j in r["jobsCreated"]]
    assert len(jobs) == len(set(jobs)) == 120


async def test_phone_at_199_of_200_sends_exactly_one_of_five(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    # About the calendar too (when the skipped leads come back), so on a known day in the default window.
    clock.now = OPEN_HOURS
    today = quota_date(OPEN_HOURS, "Europe/Bucharest")
    tenant = await factory.tenant()
    phone = await factory.phone(tenant)
    await redis.set(quota_key(phone, today), 199)
    await factory.leads(tenant, 5, company={"email_status": "unknown"})

    result = await run_dispatch(deps, tenant)

    assert (result["dispatchedToWhatsApp"], result["skippedQuotaExceeded"]) == (1, 4)
    assert int(await redis.get(quota_key(phone, today))) == 200
    waiting = await factory.scalar(
        "SELECT count(*) FROM gold_lead_journey WHERE next_action_at = :next",
        next=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
    )
    assert waiting == 4  # tomorrow 09:00 Bucharest, when the quota is fresh


async def test_a_conversation_waits_for_its_own_phone(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    busy = await factory.phone(tenant, daily_limit=50)
    await factory.phone(tenant)  # plenty of room, but not this lead's number
    await redis.set(quota_key(busy, today), 50)
    lead = await factory.lead(tenant, assigned_phone_id=busy, engagement_stage="CONTACTED_WA")

    result = await run_dispatch(deps, tenant)

    assert result["decisions"][0]["reason"] == "STICKY_QUOTA_EXHAUSTED"
    assert result["skippedQuotaExceeded"] == 1
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] == busy


async def test_outside_the_window_nothing_is_dispatched(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await factory.tenant()
    await factory.phone(tenant)
    await factory.leads(tenant, 7)
    clock.now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday
    before = await snapshot(factory, redis)

    result = await run_dispatch(deps, tenant, batchSize=5)

    assert result["skippedOutsideHours"] == 5
    assert result["outsideSendingWindow"] is True
    assert result["nextDispatchAt"] == "2026-12-02T07:00:00Z"  # Monday 30 Nov and Tuesday 1 Dec are holidays
    assert result["dispatchedToWhatsApp"] == result["dispatchedToEmail"] == 0
    assert await snapshot(factory, redis) == before


async def test_dry_run_returns_the_plan_and_changes_nothing(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    await factory.leads(tenant, 4)
    await factory.lead(tenant, company={"hlr_reachable": False})
    before = await snapshot(factory, redis)

    plan = await run_dispatch(deps, tenant, dryRun=True)

    assert await snapshot(factory, redis) == before
    real = await run_dispatch(deps, tenant)
    assert plan["dryRun"] is True
    assert plan["decisions"] == real["decisions"]
    assert plan["jobsCreated"] == real["jobsCreated"]


async def test_priority_first_then_next_action(deps: Deps, factory: Factory, clock: FixedClock) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    past = clock.now - timedelta(days=1)
    low = await factory.lead(tenant, priority="LOW")
    normal_late = await factory.lead(tenant, next_action_at=past + timedelta(hours=2))
    normal_early = await factory.lead(tenant, next_action_at=past)
    high = await factory.lead(tenant, priority="HIGH", next_action_at=past + timedelta(hours=5))
    normal_new = await factory.lead(tenant)

    result = await run_dispatch(deps, tenant, batchSize=4)

    assert [UUID(d["leadId"]) for d in result["decisions"]] == [high, normal_early, normal_late, normal_new]
    assert low not in {UUID(d["leadId"]) for d in result["decisions"]}


async def test_an_import_of_new_leads_does_not_hold_back_overdue_follow_ups(
    deps: Deps, factory: Factory, clock: FixedClock
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    await factory.leads(tenant, 6)  # never scheduled: a fresh import
    overdue = [
        await factory.lead(
            tenant, engagement_stage="CONTACTED_WA", next_action_at=clock.now - timedelta(hours=hours)
        )
        for hours in (1, 30)
    ]

    result = await run_dispatch(deps, tenant, batchSize=2)

    assert [UUID(d["leadId"]) for d in result["decisions"]] == overdue[::-1]  # oldest first


async def test_filters_narrow_the_selection(deps: Deps, factory: Factory, today: date) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    wanted = await factory.lead(tenant, priority="HIGH", current_sequence_id="seq-a")
    await factory.lead(tenant, priority="HIGH", current_sequence_id="seq-b")
    await factory.lead(tenant, priority="LOW", current_sequence_id="seq-a")

    result = await run_dispatch(deps, tenant, priorityFilter="HIGH", sequenceFilter="seq-a")

    assert [d["leadId"] for d in result["decisions"]] == [str(wanted)]
    assert result["jobsCreated"][0]["jobId"].endswith(f"{wanted}:seq-a:0:{today}")


async def test_channel_preference_email_never_overrides_opt_out(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    await factory.lead(tenant, email_opted_out=True)

    result = await run_dispatch(deps, tenant, channelPreference="EMAIL")

    assert result["dispatchedToEmail"] == 0
    assert result["decisions"][0]["reason"] == "PREFERENCE_NOT_ALLOWED"


async def test_all_fans_out_the_active_tenants_together_in_one_job(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    active = sorted([await factory.tenant(), await factory.tenant()])
    await factory.tenant(status="SUSPENDED")

    first = await run_dispatch(deps, "ALL", job_id="manual-all")
    again = await run_dispatch(deps, "ALL", job_id="manual-all")

    group = f"dispatch:{active[0]}..{active[1]}:manual-all"
    assert [(t["tenantId"], t["jobId"]) for t in first["tenantJobs"]] == [(str(t), group) for t in active]
    assert all(t["enqueued"] for t in first["tenantJobs"])
    assert not any(t["enqueued"] for t in again["tenantJobs"])
    assert await queued(redis, "outreach:orchestrator:dispatch") == [group]
    child = await job_payload(redis, group)
    assert child["f"] == "dispatch"
    assert child["a"][0]["tenantId"] == "ALL"
    assert child["a"][0]["tenantIds"] == [str(t) for t in active]
    assert child["a"][0]["correlationId"] == "corr-1"


async def test_all_gives_each_tenant_its_own_job_when_a_group_would_pass_dispatch_group_leads(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    active = sorted([await factory.tenant() for _ in range(3)])

    async with deps_with(clock, dispatch_group_leads=250) as two_per_job:  # batch 100: 2 tenants a job
        result = await run_dispatch(two_per_job, "ALL", job_id="manual-all")
    async with deps_with(clock, dispatch_group_leads=100) as one_per_job:
        alone = await run_dispatch(one_per_job, "ALL", job_id="other-all", batchSize=100)

    pair = f"dispatch:{active[0]}..{active[1]}:manual-all"
    last = f"dispatch:{active[2]}:manual-all"
    assert [t["jobId"] for t in result["tenantJobs"]] == [pair, pair, last]
    alone_job = (await job_payload(redis, last))["a"][0]
    assert alone_job["tenantId"] == str(active[2])
    assert "tenantIds" not in alone_job  # a tenant's own job reads as it always has
    assert [t["jobId"] for t in alone["tenantJobs"]] == [f"dispatch:{t}:other-all" for t in active]


async def test_bad_input_fails_and_writes_nothing(deps: Deps, factory: Factory, redis: Redis) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.leads(tenant, 2)
    before = await snapshot(factory, redis)
    with pytest.raises(InvalidJobInput, match="batchSize"):
        await run_dispatch(deps, tenant, batchSize=5000)
    with pytest.raises(NotFound, match=r"tenant .* not found"):
        await run_dispatch(deps, "6a1b2c3d-0000-4000-8000-000000000000")
    with pytest.raises(InvalidJobInput, match=r"tenantIds: Value error, only with tenantId 'ALL'"):
        await run_dispatch(deps, tenant, tenantIds=[str(tenant)])
    with pytest.raises(InvalidJobInput, match=r"tenantIds: Value error, a tenant is named twice"):
        await run_dispatch(deps, "ALL", tenantIds=[str(tenant), str(tenant)])
    with pytest.raises(InvalidJobInput, match=r"tenantIds\.1: Input should be a valid UUID"):
        await run_dispatch(deps, "ALL", tenantIds=[str(tenant), "tenant-2"])
    assert await snapshot(factory, redis) == before


async def test_redis_unreachable_is_retried_and_leaves_nothing_half_written(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await tenant_with_leads(factory, 3)
    before = await snapshot(factory, redis)
    broken = await build_deps(make_settings(redis_url="redis://127.0.0.1:1/0"), clock=clock)
    try:
        with pytest.raises(Retry):
            await dispatch(job_ctx(broken), {"correlationId": "c", "tenantId": str(tenant)})
    finally:
        await close_deps(broken)
    assert await snapshot(factory, redis) == before
