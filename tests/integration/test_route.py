from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.contracts import RouterResult
from src.errors import NotFound, TenantMismatch
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX, quota_key
from src.redis_io.codec import loads
from src.redis_io.job_writer import slotted_job
from src.results import instant
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import CONSENT_EVIDENCE, Factory
from tests.support.jobs import checked, job_ctx, queued
from tests.support.tenants import ALWAYS_OPEN


async def run(
    deps: Deps, tenant: UUID, lead: UUID, phone: UUID, *, job_id: str = "router-1", **extra: Any
) -> dict[str, Any]:
    payload = {
        "tenantId": str(tenant),
        "leadId": str(lead),
        "phoneId": str(phone),
        "messageType": "INITIAL",
        "payload": {"text": "Bună ziua!"},
        **extra,
    }
    return checked(RouterResult, await route(job_ctx(deps, job_id=job_id), payload))


async def test_routes_to_the_phone_queue_by_slot(
    deps: Deps, factory: Factory, redis: Redis, today: date, clock: FixedClock
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000042")
    lead = await factory.lead(tenant, assigned_phone_id=phone)

    result = await run(deps, tenant, lead, phone, correlationId="corr-1")

    assert result == {
        "routed": True,
        "targetQueue": "q:wa:phone_42",
        "jobId": "routed:router-1",
        "phoneId": str(phone),
        "reroutedFrom": None,
        "enqueued": True,
        "reason": "ROUTED",
        "deferred": False,
        "scheduledAt": None,
    }
    assert await queued(redis, "q:wa:phone_42") == ["routed:router-1"]
    job = loads(await redis.get(ARQ_JOB_PREFIX + "routed:router-1"))
    assert job["f"] == "send-whatsapp-initial"
    assert job["a"] == [
        {
            "text": "Bună ziua!",
            "tenantId": str(tenant),
            "leadId": str(lead),
            "phoneId": str(phone),
            "lawfulBasis": CONSENT_EVIDENCE,
            "scheduledAt": instant(clock.now),  # the phone's first slot of the day: now
            "correlationId": "corr-1",
        }
    ]
    assert int(await redis.get(quota_key(phone, today))) == 1


async def test_followup_goes_to_the_followup_queue(deps: Deps, factory: Factory, redis: Redis) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000043")
    lead = await factory.lead(tenant)

    result = await run(deps, tenant, lead, phone, messageType="FOLLOWUP")

    assert result["targetQueue"] == "q:wa:phone_43:followup"
    job = loads(await redis.get(ARQ_JOB_PREFIX + result["jobId"]))
    assert job["f"] == "send-whatsapp-followup"


async def test_a_retried_router_job_enqueues_and_counts_nothing_twice(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000044")
    lead = await factory.lead(tenant)

    first = await run(deps, tenant, lead, phone, job_id="router-7")
    second = await run(deps, tenant, lead, phone, job_id="router-7")

    assert first["jobId"] == second["jobId"] == "routed:router-7"
    assert (first["enqueued"], second["enqueued"]) == (True, False)
    assert await queued(redis, "q:wa:phone_44") == ["routed:router-7"]
    assert int(await redis.get(quota_key(phone, today))) == 1


async def test_a_paced_message_is_enqueued_at_its_slot_by_the_reservation_itself(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    """One script reserves the slot and writes the job: its payload's scheduledAt (written in Lua) is the
    result's, to the microsecond, and the job is due that much after its enqueue time."""
    clock.now = clock.now.replace(microsecond=123456)
    tenant = await factory.tenant(**{**ALWAYS_OPEN, "wa_min_gap_s": 90})
    phone = await factory.phone(tenant, phone_number="+40721000047")
    first, second = await factory.lead(tenant), await factory.lead(tenant)

    await run(deps, tenant, first, phone, job_id="router-a")
    result = await run(deps, tenant, second, phone, job_id="router-b")

    slot = clock.now + timedelta(seconds=90)  # the phone's next free instant, 90 s after the first
    assert (result["enqueued"], result["scheduledAt"]) == (True, instant(slot))
    job = loads(await redis.get(ARQ_JOB_PREFIX + "routed:router-b"))
    assert job["a"][0]["scheduledAt"] == instant(slot)
    assert instant(slot).endswith(".123456Z")
    assert await redis.zscore("q:wa:phone_47", "routed:router-b") == job["et"] + 90_000


async def test_a_payload_holding_the_slot_s_mark_is_routed_in_two_calls_all_the_same(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000048")
    lead = await factory.lead(tenant)
    payload = {"text": "Bună ziua!", "<<scheduledAt>>": "<<scheduledAt>>"}
    # The caller's own text where the script would put the slot: no one-script job is made of it.
    assert slotted_job("routed:router-m", "q", "f", payload, now_us=0, enqueue_ms=0) is None

    first = await run(deps, tenant, lead, phone, job_id="router-m", payload=payload)
    again = await run(deps, tenant, lead, phone, job_id="router-m", payload=payload)

    assert (first["routed"], first["enqueued"], again["enqueued"]) == (True, True, False)
    job = loads(await redis.get(ARQ_JOB_PREFIX + "routed:router-m"))
    assert job["a"][0]["<<scheduledAt>>"] == "<<scheduledAt>>"
    assert job["a"][0]["scheduledAt"] == instant(clock.now)
    assert await queued(redis, "q:wa:phone_48") == ["routed:router-m"]
    assert int(await redis.get(quota_key(phone, today))) == 1


async def test_dead_phone_is_rerouted_and_the_lead_follows(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(tenant, phone_number="+40721000045", status="BANNED")
    healthy = await factory.phone(tenant, phone_number="+40721000046")
    lead = await factory.lead(tenant, assigned_phone_id=banned)

    result = await run(deps, tenant, lead, banned)

    assert (result["routed"], result["phoneId"], result["reroutedFrom"]) == (True, str(healthy), str(banned))
    assert result["targetQueue"] == "q:wa:phone_46"
    assert result["reason"] == "REROUTED_PHONE_UNAVAILABLE"
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] == healthy
    assert await queued(redis, "q:wa:phone_45") == []


async def test_phone_of_another_tenant_is_refused_and_touches_nothing(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    mine, theirs = await factory.tenant(**ALWAYS_OPEN), await factory.tenant(**ALWAYS_OPEN)
    lead = await factory.lead(mine)
    await factory.phone(mine)
    their_phone = await factory.phone(theirs)

    with pytest.raises(TenantMismatch, match="belongs to another tenant"):
        await run(deps, mine, lead, their_phone)
    assert await redis.dbsize() == 0


async def test_unknown_phone_and_unknown_lead_are_not_found(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    lead = await factory.lead(tenant)
    phone = await factory.phone(tenant)
    with pytest.raises(NotFound, match=r"phone .* not found"):
        await run(deps, tenant, lead, uuid4())
    with pytest.raises(NotFound, match=r"lead .* not found for tenant"):
        await run(deps, tenant, uuid4(), phone)


async def test_opted_out_lead_is_not_routed(deps: Deps, factory: Factory, redis: Redis) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant, whatsapp_opted_out=True)

    result = await run(deps, tenant, lead, phone)

    assert (result["routed"], result["enqueued"]) == (False, False)
    assert result["reason"].startswith("WHATSAPP_OPTED_OUT")
    assert await redis.dbsize() == 0


async def test_phone_without_quota_is_not_routed(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, daily_limit=3)
    await redis.set(quota_key(phone, today), 3)
    lead = await factory.lead(tenant)

    result = await run(deps, tenant, lead, phone)

    assert result["routed"] is False
    assert result["reason"].startswith("QUOTA_EXHAUSTED")
    assert int(await redis.get(quota_key(phone, today))) == 3


async def test_a_retried_reroute_keeps_its_reservation_on_a_now_full_phone(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(tenant, status="BANNED")
    only = await factory.phone(tenant, phone_number="+40721000047", daily_limit=1)
    lead = await factory.lead(tenant, assigned_phone_id=banned)

    first = await run(deps, tenant, lead, banned, job_id="router-9")
    retry = await run(deps, tenant, lead, banned, job_id="router-9")

    assert (first["routed"], first["phoneId"], first["enqueued"]) == (True, str(only), True)
    assert (retry["routed"], retry["phoneId"], retry["enqueued"]) == (True, str(only), False)
    assert int(await redis.get(quota_key(only, today))) == 1


async def test_a_retry_after_the_asked_phone_came_back_keeps_the_reroute_s_phone_and_count(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, today: date
) -> None:
    """route passes the script only the asked phone; a reservation an earlier try made on another phone
    is still found and reused, not doubled on the asked one."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    asked = await factory.phone(tenant, phone_number="+40721000048", status="PAUSED")
    other = await factory.phone(tenant, phone_number="+40721000049")
    lead = await factory.lead(tenant, assigned_phone_id=asked)

    first = await run(deps, tenant, lead, asked, job_id="router-10")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE wa_phone_numbers SET status = 'ACTIVE' WHERE id = :id"), {"id": asked}
        )
    retry = await run(deps, tenant, lead, asked, job_id="router-10")

    assert (first["phoneId"], first["enqueued"]) == (str(other), True)
    assert (retry["routed"], retry["phoneId"], retry["enqueued"]) == (True, str(other), False)
    assert retry["targetQueue"] == first["targetQueue"] == "q:wa:phone_49"
    assert await redis.get(quota_key(asked, today)) is None
    assert int(await redis.get(quota_key(other, today))) == 1
