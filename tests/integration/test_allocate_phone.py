from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from src.contracts import PhoneAllocationResult
from src.domain.quota import quota_date
from src.errors import NotFound
from src.jobs.allocate_phone import allocate_phone
from src.names import quota_key
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import checked, job_ctx
from tests.support.tenants import ALWAYS_OPEN


async def run(deps: Deps, tenant: UUID, lead: UUID, **extra: Any) -> dict[str, Any]:
    payload = {"tenantId": str(tenant), "leadId": str(lead), **extra}
    result = await allocate_phone(job_ctx(deps, job_id=f"alloc-{uuid4()}"), payload)
    return checked(PhoneAllocationResult, result)


async def use_quota(deps: Deps, phone: UUID, used: int) -> None:
    """`used` sends counted today (in Europe/Bucharest, at the test's clock) for `phone`."""
    await deps.redis.set(quota_key(phone, quota_date(deps.clock(), "Europe/Bucharest")), used)


async def test_new_lead_gets_a_phone_and_keeps_it(deps: Deps, factory: Factory, today: date) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)

    first = await run(deps, tenant, lead)
    again = await run(deps, tenant, lead)

    assert (first["allocatedPhoneId"], first["allocationType"]) == (str(phone), "NEW")
    assert first["phoneQuotaStatus"] == {
        "currentUsage": 0,
        "remaining": 200,
        "dailyLimit": 200,
        "quotaDate": str(today),
    }
    assert (again["allocatedPhoneId"], again["allocationType"]) == (str(phone), "STICKY")
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] == phone


async def test_banned_sticky_phone_is_replaced_by_a_fallback(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(tenant, status="BANNED")
    healthy = await factory.phone(tenant)
    lead = await factory.lead(tenant, assigned_phone_id=banned)

    result = await run(deps, tenant, lead)

    assert (result["allocatedPhoneId"], result["allocationType"]) == (str(healthy), "FALLBACK")
    assert result["previousPhoneId"] == str(banned)
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] == healthy


async def test_no_phone_with_quota_is_a_result_not_a_failure(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, daily_limit=10)
    await use_quota(deps, phone, 10)
    lead = await factory.lead(tenant)

    result = await run(deps, tenant, lead)

    assert result["allocatedPhoneId"] is None
    assert result["reason"].startswith("NO_PHONE_WITH_QUOTA")
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] is None


async def test_reads_and_writes_stay_in_the_tenant(deps: Deps, factory: Factory, redis: Redis) -> None:
    mine, theirs = await factory.tenant(**ALWAYS_OPEN), await factory.tenant(**ALWAYS_OPEN)
    my_phone = await factory.phone(mine)
    # Their phone has 5,000 times my phone's room: a pool that let it in would draw it nearly every time.
    their_phone = await factory.phone(theirs, daily_limit=1_000_000)
    their_lead = await factory.lead(theirs)

    with pytest.raises(NotFound):
        await run(deps, mine, their_lead)
    assert (await factory.journey(theirs, their_lead))["assigned_phone_id"] is None

    # A lead of mine never gets a phone of theirs, whatever the quotas say: 20 draws, new and re-drawn.
    results = [await run(deps, mine, lead) for lead in await factory.leads(mine, 10)]
    results += [await run(deps, mine, lead, preferExisting=False) for lead in await factory.leads(mine, 10)]
    assert {r["allocatedPhoneId"] for r in results} == {str(my_phone)}
    assert not [key async for key in redis.scan_iter(match=f"*{their_phone}*")]


async def test_200_concurrent_allocations_spread_over_4_phones(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phones = [await factory.phone(tenant) for _ in range(4)]
    full = await factory.phone(tenant)
    await use_quota(deps, full, 200)
    leads = await factory.leads(tenant, 200)
    slots = asyncio.Semaphore(50)  # the allocator queue's concurrency

    async def allocate(lead: UUID) -> dict[str, Any]:
        async with slots:
            return await run(deps, tenant, lead)

    results = await asyncio.gather(*(allocate(lead) for lead in leads))

    per_phone = Counter(r["allocatedPhoneId"] for r in results)
    assert set(per_phone) <= {str(p) for p in phones}
    assert per_phone[str(full)] == 0
    for phone in phones:
        assert 25 <= per_phone[str(phone)] <= 75, per_phone
    stored = await factory.scalar(
        "SELECT count(*) FROM gold_lead_journey WHERE tenant_id = :t AND assigned_phone_id IS NOT NULL",
        t=tenant,
    )
    assert stored == 200
    assert all(r["allocationType"] == "NEW" for r in results)


async def test_concurrent_allocations_of_one_lead_yield_one_phone(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    for _ in range(4):
        await factory.phone(tenant)
    lead = await factory.lead(tenant)

    results = await asyncio.gather(*(run(deps, tenant, lead) for _ in range(30)))

    chosen = {r["allocatedPhoneId"] for r in results}
    assert len(chosen) == 1
    assert str((await factory.journey(tenant, lead))["assigned_phone_id"]) == chosen.pop()
    assert Counter(r["allocationType"] for r in results)["NEW"] <= 1


async def test_concurrent_reallocations_from_a_banned_phone_agree(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(tenant, status="BANNED")
    for _ in range(4):
        await factory.phone(tenant)
    lead = await factory.lead(tenant, assigned_phone_id=banned)

    results = await asyncio.gather(*(run(deps, tenant, lead) for _ in range(30)))

    chosen = {r["allocatedPhoneId"] for r in results}
    assert len(chosen) == 1
    assert Counter(r["allocationType"] for r in results)["FALLBACK"] == 1
