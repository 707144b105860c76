"""The law in the four jobs: no lawful basis, a suppressed address or number, an objection (issue 11).

Each reason code in dispatch, select_channel, route and allocate_phone; domain entries covering subdomains
whatever the case; a global entry stopping two tenants; a tenant whose gate is off; and the per-lead jobs'
exact lookup for numbers and addresses their SQL cannot key (src/db/queries/lawful.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.contracts import ChannelSelectionResult, PhoneAllocationResult, RouterResult
from src.jobs.allocate_phone import allocate_phone
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.names import quota_key
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory, tenant_with_phone
from tests.support.invariants import queued_outreach_jobs
from tests.support.jobs import checked, job_ctx, queued, run_dispatch
from tests.support.tenants import ALWAYS_OPEN

NO_BASIS = {"whatsapp_lawful_basis": None, "email_lawful_basis": None}
NOT_ALLOWED = {"whatsapp_lawful_basis": "LEGITIMATE_INTEREST", "email_lawful_basis": "LEGITIMATE_INTEREST"}
NO_EMAIL = {"email_principal": None, "email_status": None}
OBJECTED_AT = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


async def leads_held_by_the_law(factory: Factory, tenant: UUID) -> dict[str, UUID]:
    """One lead per reason code, each reachable on both channels but for the law; the domain entry is the
    tenant's, named in lower case, and the lead's address is at a subdomain, in upper case."""
    await factory.suppression(tenant, "DOMAIN", "grupul-vest.ro")
    return {
        "NO_LAWFUL_BASIS": await factory.lead(tenant, **NO_BASIS),
        "LEGITIMATE_INTEREST": await factory.lead(tenant, **NOT_ALLOWED),
        "SUPPRESSED": await factory.lead(
            tenant, company={"email_principal": "Achizitii@Cluj.GRUPUL-VEST.ro"}
        ),
        "OBJECTED": await factory.lead(tenant, objected_at=OBJECTED_AT),
    }


def code_of(name: str) -> str:
    return "NO_LAWFUL_BASIS" if name == "LEGITIMATE_INTEREST" else name


@pytest.fixture
async def tenant(factory: Factory) -> UUID:
    return await tenant_with_phone(factory, phone_number="+40721000031")


async def test_dispatch_holds_each_lead_the_law_stops_and_sends_the_rest(
    deps: Deps, factory: Factory, redis: Redis, tenant: UUID, today: date, clock: FixedClock
) -> None:
    held = await leads_held_by_the_law(factory, tenant)
    free = await factory.lead(tenant)

    result = await run_dispatch(deps, tenant)

    decisions = {UUID(d["leadId"]): d for d in result["decisions"]}
    for name in ("NO_LAWFUL_BASIS", "LEGITIMATE_INTEREST", "SUPPRESSED"):
        decision = decisions[held[name]]
        assert (decision["outcome"], decision["reason"], decision["jobId"]) == (
            "SKIPPED_NO_CHANNEL",
            code_of(name),
            None,
        ), name
    # An objected lead is never due: not selected, not counted, its journey untouched.
    assert held["OBJECTED"] not in decisions
    assert (await factory.journey(tenant, held["OBJECTED"]))["next_action_at"] is None
    assert (result["totalEligibleLeads"], result["dispatchedToWhatsApp"], result["skippedNoChannel"]) == (
        4,
        1,
        3,
    )
    assert await queued(redis, "q:wa:phone_31") == [f"wa:{tenant}:{free}:-:0:{today}"]
    assert await queued_outreach_jobs(redis) == 1
    assert int(await redis.get(quota_key(await phone_of(factory, tenant), today))) == 1


async def phone_of(factory: Factory, tenant: UUID) -> UUID:
    phone: UUID = await factory.scalar("SELECT id FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant)
    return phone


async def test_select_channel_names_each_reason(deps: Deps, factory: Factory, tenant: UUID) -> None:
    held = await leads_held_by_the_law(factory, tenant)
    for name, lead in held.items():
        for preference in ("AUTO", "WHATSAPP", "EMAIL"):
            data = {"tenantId": str(tenant), "leadId": str(lead), "preferredChannel": preference}
            result = checked(ChannelSelectionResult, await select_channel(job_ctx(deps), data))
            assert (result["selectedChannel"], result["fallbackChannel"]) == (None, None), (name, preference)
            assert result["reasonCode"] == code_of(name), (name, preference)
    reasoning = checked(
        ChannelSelectionResult,
        await select_channel(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(held["SUPPRESSED"])}),
    )["reasoning"]
    assert (reasoning["suppressed"], reasoning["objected"]) == (["EMAIL", "WHATSAPP"], False)


async def test_route_refuses_each_reason_and_sends_nothing(
    deps: Deps, factory: Factory, redis: Redis, tenant: UUID, today: date
) -> None:
    held = await leads_held_by_the_law(factory, tenant)
    phone = await phone_of(factory, tenant)
    for name, lead in held.items():
        data = {"leadId": str(lead), "phoneId": str(phone), "messageType": "INITIAL", "payload": {"t": 1}}
        result = checked(RouterResult, await route(job_ctx(deps, job_id=f"router-{name}"), data))
        assert (result["routed"], result["jobId"], result["enqueued"]) == (False, None, False), name
        assert result["reason"].startswith(code_of(name) + ": "), result["reason"]
    assert await queued_outreach_jobs(redis) == 0
    assert await redis.get(quota_key(phone, today)) is None
    assert await factory.scalar("SELECT count(*) FROM outreach_messages") == 0


async def test_allocate_phone_hands_no_phone_for_each_reason(
    deps: Deps, factory: Factory, tenant: UUID
) -> None:
    held = await leads_held_by_the_law(factory, tenant)
    for name, lead in held.items():
        data = {"tenantId": str(tenant), "leadId": str(lead)}
        result = checked(PhoneAllocationResult, await allocate_phone(job_ctx(deps), data))
        assert (result["allocatedPhoneId"], result["allocationType"]) == (None, None), name
        assert result["reason"].startswith(code_of(name) + ": "), result["reason"]
        assert (await factory.journey(tenant, lead))["assigned_phone_id"] is None


async def test_a_domain_entry_covers_its_subdomains_whatever_the_case(
    deps: Deps, factory: Factory, redis: Redis, tenant: UUID, today: date
) -> None:
    await factory.suppression(tenant, "DOMAIN", "agro.ro", channel="EMAIL")
    addresses = {
        "ana@agro.ro": True,
        "ANA@Vest.AGRO.ro": True,
        "  office@depozit.vest.agro.ro ": True,
        "ana@notagro.ro": False,
        "ana@agro.ro.example.com": False,
    }
    leads = {
        address: await factory.lead(tenant, company={"email_principal": address, "telefon_principal": None})
        for address in addresses
    }

    result = await run_dispatch(deps, tenant)

    reasons = {UUID(d["leadId"]): d["reason"] for d in result["decisions"]}
    for address, suppressed in addresses.items():
        assert reasons[leads[address]] == ("SUPPRESSED" if suppressed else "BEST_SCORE"), address
    assert len(await queued(redis, "q:email:cold")) == 2


async def test_a_global_entry_stops_every_tenant_and_a_tenant_s_entry_only_its_own(
    deps: Deps, factory: Factory
) -> None:
    tenants = [await factory.tenant(**ALWAYS_OPEN) for _ in range(3)]
    for n, tenant in enumerate(tenants):
        await factory.phone(tenant, phone_number=f"+4072100004{n}")
    await factory.suppression(None, "PHONE", "+40722555001", channel="WHATSAPP")
    await factory.suppression(tenants[0], "PHONE", "+40722555002", channel="WHATSAPP")
    shared = {
        t: await factory.lead(t, company={"telefon_principal": "0722 555 001", **NO_EMAIL}) for t in tenants
    }
    own = {
        t: await factory.lead(t, company={"telefon_principal": "0722 555 002", **NO_EMAIL}) for t in tenants
    }

    reasons: dict[UUID, str] = {}
    for n, tenant in enumerate(tenants):
        result = await run_dispatch(deps, tenant, job_id=f"dispatch-{n}")
        reasons |= {UUID(d["leadId"]): d["reason"] for d in result["decisions"]}

    assert [reasons[shared[t]] for t in tenants] == ["SUPPRESSED"] * 3
    assert [reasons[own[t]] for t in tenants] == ["SUPPRESSED", "NEW_PHONE", "NEW_PHONE"]


async def test_a_tenant_whose_gate_is_off_reaches_leads_without_a_basis(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN, allowed_lawful_bases=[])
    await factory.phone(tenant, phone_number="+40721000061")
    lead = await factory.lead(tenant, **NO_BASIS)
    objected = await factory.lead(tenant, **NO_BASIS, objected_at=OBJECTED_AT)

    result = await run_dispatch(deps, tenant)

    assert [(d["leadId"], d["outcome"]) for d in result["decisions"]] == [(str(lead), "DISPATCHED")]
    assert objected not in {UUID(d["leadId"]) for d in result["decisions"]}


async def test_a_new_tenant_gets_the_romanian_default(factory: Factory) -> None:
    tenant = await factory.tenant()
    allowed = await factory.scalar("SELECT allowed_lawful_bases FROM tenants WHERE id = :t", t=tenant)
    assert allowed == ["CONSENT", "EXISTING_CUSTOMER"]


async def test_per_lead_jobs_look_up_numbers_and_addresses_their_sql_cannot_key(
    deps: Deps, factory: Factory, tenant: UUID
) -> None:
    # Neither a plain Romanian shape nor an address SQL's btrim strips: the jobs look the exact keys up.
    await factory.suppression(None, "PHONE", "+40722111222", channel="WHATSAPP")
    await factory.suppression(tenant, "EMAIL", "office@ferma-noua.ro", channel="EMAIL")
    company: dict[str, Any] = {
        "telefon_principal": "+40 (722) 111 222",
        "email_principal": "\u00a0Office@Ferma-Noua.ro",
    }
    lead = await factory.lead(tenant, company=company)
    phone = await phone_of(factory, tenant)

    chosen = await select_channel(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})
    routed = await route(
        job_ctx(deps), {"leadId": str(lead), "phoneId": str(phone), "messageType": "INITIAL", "payload": {}}
    )
    allocated = await allocate_phone(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})

    assert (chosen["reasonCode"], chosen["reasoning"]["suppressed"]) == ("SUPPRESSED", ["EMAIL", "WHATSAPP"])
    assert routed["reason"].startswith("SUPPRESSED: ")
    assert allocated["reason"].startswith("SUPPRESSED: ")
