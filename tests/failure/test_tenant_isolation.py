"""For every job, input that mixes two tenants' ids is refused and touches neither tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from src.errors import JobError, NotFound, TenantMismatch
from src.jobs.allocate_phone import allocate_phone
from src.jobs.dispatch import dispatch
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import job_ctx
from tests.support.tenants import ALWAYS_OPEN


class Tenant:
    def __init__(self, tenant: UUID, phone: UUID, lead: UUID) -> None:
        self.id, self.phone, self.lead = tenant, phone, lead


async def two_tenants(factory: Factory) -> tuple[Tenant, Tenant]:
    made = []
    for _ in range(2):
        tenant = await factory.tenant(**ALWAYS_OPEN)
        phone = await factory.phone(tenant)
        lead = await factory.lead(tenant, assigned_phone_id=phone, engagement_stage="CONTACTED_WA")
        made.append(Tenant(tenant, phone, lead))
    return made[0], made[1]


async def everything(deps: Deps) -> tuple[Any, ...]:
    async with deps.pg.acquire() as conn:
        rows = await conn.fetchval("SELECT string_agg(j::text, '|' ORDER BY j.id) FROM gold_lead_journey j")
        outbox = await conn.fetchval("SELECT count(*) FROM dispatch_outbox")
    return rows, outbox, sorted(await deps.redis.keys("*"))


def mixes(a: Tenant, b: Tenant) -> list[tuple[str, dict[str, str], type[JobError]]]:
    return [
        ("select_channel", {"tenantId": str(a.id), "leadId": str(b.lead)}, NotFound),
        ("allocate_phone", {"tenantId": str(a.id), "leadId": str(b.lead)}, NotFound),
        ("allocate_phone", {"tenantId": str(a.id), "leadId": str(b.lead), "preferExisting": False}, NotFound),
        (
            "route",
            {
                "tenantId": str(a.id),
                "leadId": str(a.lead),
                "phoneId": str(b.phone),
                "messageType": "INITIAL",
                "payload": {},
            },
            TenantMismatch,
        ),
        (
            "route",
            {
                "tenantId": str(a.id),
                "leadId": str(b.lead),
                "phoneId": str(a.phone),
                "messageType": "INITIAL",
                "payload": {},
            },
            NotFound,
        ),
        (
            "route",
            {
                "tenantId": str(a.id),
                "leadId": str(b.lead),
                "phoneId": str(b.phone),
                "messageType": "FOLLOWUP",
                "payload": {},
            },
            NotFound,
        ),
    ]


JOBS = {"select_channel": select_channel, "allocate_phone": allocate_phone, "route": route}


@pytest.mark.parametrize("case", range(6))
async def test_mixed_tenant_input_is_refused_and_changes_nothing(
    deps: Deps, factory: Factory, case: int
) -> None:
    a, b = await two_tenants(factory)
    job, payload, error = mixes(a, b)[case]
    before = await everything(deps)

    with pytest.raises(error):
        await JOBS[job](job_ctx(deps), payload)

    assert await everything(deps) == before


async def test_dispatch_of_one_tenant_never_touches_the_other(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    a, b = await two_tenants(factory)
    await factory.leads(b.id, 3)
    b_rows_before = await factory.scalar(
        "SELECT string_agg(j::text, '|' ORDER BY j.id) FROM gold_lead_journey j WHERE tenant_id = :t", t=b.id
    )

    result = await dispatch(job_ctx(deps), {"correlationId": "c", "tenantId": str(a.id)})

    assert {d["leadId"] for d in result["decisions"]} == {str(a.lead)}
    assert {j["phoneId"] for j in result["jobsCreated"]} == {str(a.phone)}
    b_rows_after = await factory.scalar(
        "SELECT string_agg(j::text, '|' ORDER BY j.id) FROM gold_lead_journey j WHERE tenant_id = :t", t=b.id
    )
    assert b_rows_after == b_rows_before
    assert not [key async for key in redis.scan_iter(match=f"*{b.id}*")]
    assert not [key async for key in redis.scan_iter(match=f"*{b.phone}*")]


async def test_the_schema_refuses_a_journey_that_mixes_tenants(engine: AsyncEngine, factory: Factory) -> None:
    a, b = await two_tenants(factory)
    company_of_a = await factory.company(a.id)
    with pytest.raises(IntegrityError, match="fk_gold_lead_journey_tenant_id_assigned_phone_id"):
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO gold_lead_journey (tenant_id, lead_id, assigned_phone_id) VALUES (:t, :l, :p)"
                ),
                {"t": a.id, "l": company_of_a, "p": b.phone},
            )
    with pytest.raises(IntegrityError, match="fk_gold_lead_journey_tenant_id_lead_id"):
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO gold_lead_journey (tenant_id, lead_id) VALUES (:t, :l)"),
                {"t": a.id, "l": b.lead},
            )
