"""dispatch of several tenants together (tenantIds, what the ALL fan-out enqueues): each tenant comes out
exactly as its own dispatch would, a crash between commit and enqueue loses nothing, and one tenant at
fault does not hold the others back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory, tenant_with_leads
from tests.support.invariants import ledger
from tests.support.jobs import deps_with, queued, run_dispatch
from tests.support.tenants import ALWAYS_OPEN


class Scenario:
    """A tenant with a lead in every situation dispatch tells apart, each lead and phone named by its role."""

    def __init__(self, tenant: UUID, roles: dict[UUID, str], slots: dict[str, str]) -> None:
        self.tenant, self.roles, self.slots = tenant, roles, slots

    def named(self, value: str | None) -> str | None:
        """A result's value with this tenant's ids and queue slots replaced by their roles."""
        if value is None:
            return None
        value = value.replace(str(self.tenant), "TENANT")
        for lead, role in self.roles.items():
            value = value.replace(str(lead), role)
        for slot, role in self.slots.items():
            value = value.replace(f"phone_{slot}", f"phone_{role}")
        return value


async def scenario(factory: Factory, n: int, clock: FixedClock) -> Scenario:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number=f"+4072100{n:02d}01")
    banned = await factory.phone(tenant, phone_number=f"+4072100{n:02d}02", status="BANNED")
    roles = {
        await factory.lead(tenant, company={"telefon_principal": f"0722 1{n:02d} 001"}): "whatsapp",
        await factory.lead(tenant, company={"hlr_reachable": False}): "email_only",
        await factory.lead(
            tenant, company={"telefon_principal": None}, engagement_stage="CONTACTED_EMAIL", sequence_step=2
        ): "warm_email",
        await factory.lead(tenant, whatsapp_opted_out=True, email_opted_out=True): "opted_out",
        await factory.lead(tenant, assigned_phone_id=banned, engagement_stage="CONTACTED_WA"): "on_banned",
        await factory.lead(tenant, requires_human_review=True): "held",
        await factory.lead(tenant, next_action_at=clock.now + timedelta(hours=1)): "later",
        await factory.lead(
            tenant, company={"telefon_principal": None, "email_principal": f"office@suppressed{n}.ro"}
        ): "suppressed",
    }
    await factory.suppression(tenant, "DOMAIN", f"suppressed{n}.ro")
    roles |= {phone: "PHONE_MAIN", banned: "PHONE_BANNED"}
    slots = {
        str(await factory.scalar("SELECT queue_slot FROM wa_phone_numbers WHERE id = :id", id=p)): role
        for p, role in ((phone, "main"), (banned, "banned"))
    }
    return Scenario(tenant, roles, slots)


async def queued_as_roles(redis: Redis, world: Scenario) -> list[str | None]:
    """The tenant's jobs on every output queue, named by role."""
    jobs = []
    for queue in sorted(await redis.keys("q:*")):
        jobs += [
            f"{world.named(queue.decode())} {world.named(j)}"
            for j in await queued(redis, queue.decode())
            if str(world.tenant) in j
        ]
    return sorted(jobs)


def as_roles(result: dict[str, Any], world: Scenario) -> dict[str, Any]:
    """A tenant's DispatchResult with its ids replaced by roles, and without its timing."""
    return {
        "counters": {k: v for k, v in result.items() if isinstance(v, int) and k != "processingTimeMs"},
        "decisions": sorted(
            tuple(world.named(str(v)) if v is not None else None for v in d.values())
            for d in result["decisions"]
        ),
        "jobs": sorted(tuple(world.named(str(v)) for v in j.values()) for j in result["jobsCreated"]),
        "outside": result["outsideSendingWindow"],
        "next": result["nextDispatchAt"],
    }


async def rows_as_roles(factory: Factory, world: Scenario) -> list[tuple[Any, ...]]:
    """The tenant's journeys and evidence rows, named by role."""
    async with factory.engine.connect() as conn:
        journeys = await conn.execute(
            text(
                "SELECT lead_id, next_action_at, last_dispatched_at, last_channel_used, "
                "assigned_phone_id IS NOT NULL FROM gold_lead_journey WHERE tenant_id = :t"
            ),
            {"t": world.tenant},
        )
        messages = await conn.execute(
            text("SELECT lead_id, channel, queue, job_id, basis FROM outreach_messages WHERE tenant_id = :t"),
            {"t": world.tenant},
        )
        return sorted(tuple(world.named(str(v)) for v in row) for row in [*journeys.all(), *messages.all()])


async def test_each_tenant_of_a_group_comes_out_as_its_own_dispatch_would(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock, today: date
) -> None:
    together = [await scenario(factory, n, clock) for n in (1, 2, 3)]
    alone = await scenario(factory, 4, clock)
    ids = [str(world.tenant) for world in together]

    grouped = await run_dispatch(deps, "ALL", job_id="group-1", tenantIds=ids)
    own = await run_dispatch(deps, alone.tenant, job_id="group-1")

    results = {r["tenantId"]: r for r in grouped["tenantResults"]}
    assert list(results) == ids
    expected = as_roles(own, alone)
    assert expected["counters"]["dispatchedToWhatsApp"] == 2  # the scenario is the full one
    assert expected["counters"]["skippedHumanReview"] == 1
    for world in together:
        assert as_roles(results[str(world.tenant)], world) == expected
        assert await rows_as_roles(factory, world) == await rows_as_roles(factory, alone)
        assert await queued_as_roles(redis, world) == await queued_as_roles(redis, alone)
    for counter in ("totalEligibleLeads", "dispatchedToWhatsApp", "dispatchedToEmail", "skippedHumanReview"):
        assert grouped[counter] == 3 * own[counter]
    assert grouped["tenantErrors"] == []
    assert await factory.scalar("SELECT count(*) FROM dispatch_outbox") == 0
    (await ledger(factory.engine, redis, today)).assert_clean()


async def test_a_group_leaves_out_a_tenant_it_cannot_use_and_dispatches_the_others(
    deps: Deps, factory: Factory, clock: FixedClock
) -> None:
    good = await tenant_with_leads(factory, 3)
    broken = await factory.tenant(timezone="Mars/Olympus")
    suspended = await factory.tenant(status="SUSPENDED")
    missing = UUID(int=7)

    result = await run_dispatch(deps, "ALL", tenantIds=[str(t) for t in (good, broken, suspended, missing)])

    assert {e["tenantId"]: e["error"] for e in result["tenantErrors"]} == {
        str(broken): "BAD_CONFIGURATION",
        str(missing): "NOT_FOUND",
    }
    by_tenant = {r["tenantId"]: r for r in result["tenantResults"]}
    assert by_tenant[str(good)]["totalEligibleLeads"] == 3
    assert by_tenant[str(suspended)]["totalEligibleLeads"] == 0
    assert result["totalEligibleLeads"] == 3


async def test_a_tenant_whose_writes_fail_fails_alone(deps: Deps, factory: Factory) -> None:
    """A write that fails for one tenant fails the shared transaction: the group is dispatched again
    one tenant at a time, and only that tenant is reported."""
    good = await tenant_with_leads(factory, 3)
    bad = await tenant_with_leads(factory, 3)
    async with factory.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_evidence() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'evidence refused'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_evidence BEFORE INSERT ON outreach_messages FOR EACH ROW "
                f"WHEN (NEW.tenant_id = '{bad}') EXECUTE FUNCTION refuse_evidence()"
            )
        )
    try:
        result = await run_dispatch(deps, "ALL", tenantIds=[str(good), str(bad)])
    finally:
        async with factory.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_evidence ON outreach_messages"))
            await conn.execute(text("DROP FUNCTION refuse_evidence()"))

    assert [(e["tenantId"], e["error"]) for e in result["tenantErrors"]] == [(str(bad), "JOB_ERROR")]
    assert "evidence refused" in result["tenantErrors"][0]["message"]
    assert [r["tenantId"] for r in result["tenantResults"]] == [str(good)]
    assert result["tenantResults"][0]["totalEligibleLeads"] == 3
    still_due = "SELECT count(*) FROM gold_lead_journey WHERE tenant_id = :t AND last_dispatched_at IS NULL"
    assert await factory.scalar(still_due, t=bad) == 3
    assert await factory.scalar(still_due, t=good) == 0


@pytest.fixture
async def pausing(deps: Deps, clock: FixedClock) -> AsyncIterator[Deps]:
    """Dispatch's resources for a dispatch that stops right after its commit; an hour of grace."""
    async with deps_with(
        clock, outbox_relay_grace_s=3600, chaos_pause_at="after_commit", chaos_pause_s=60
    ) as built:
        yield built


async def test_a_group_killed_after_its_commit_is_relayed_by_its_next_try(
    deps: Deps, pausing: Deps, factory: Factory, redis: Redis
) -> None:
    tenants = [str(await tenant_with_leads(factory, 4)) for _ in range(3)]
    task = asyncio.create_task(run_dispatch(pausing, "ALL", "group-1", tenantIds=tenants))
    for _ in range(200):
        if await factory.scalar("SELECT count(*) FROM dispatch_outbox WHERE dispatch_job_id = 'group-1'"):
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed: one outbox row per tenant, committed with the journeys; nothing enqueued.
    assert await factory.scalar("SELECT count(*) FROM dispatch_outbox WHERE dispatch_job_id = 'group-1'") == 3
    assert await queued(redis, "q:email:cold") == []

    rerun = await run_dispatch(deps, "ALL", "group-1", job_try=2, tenantIds=tenants)

    assert rerun["relayedFromOutbox"] == 12
    assert rerun["totalEligibleLeads"] == 0  # every lead was committed by the killed try
    assert await factory.scalar("SELECT count(*) FROM dispatch_outbox") == 0
    jobs = await queued(redis, "q:email:cold") + [
        j for q in await redis.keys("q:wa:*") for j in await queued(redis, q.decode())
    ]
    assert len(jobs) == len(set(jobs)) == 12


async def test_a_dry_run_of_a_group_plans_each_tenant_and_writes_nothing(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenants = [str(await tenant_with_leads(factory, 2)) for _ in range(2)]

    result = await run_dispatch(deps, "ALL", tenantIds=tenants, dryRun=True)

    assert [r["tenantId"] for r in result["tenantResults"]] == tenants
    assert all(r["dryRun"] and r["totalEligibleLeads"] == 2 for r in result["tenantResults"])
    assert (
        await factory.scalar("SELECT count(*) FROM gold_lead_journey WHERE last_dispatched_at IS NOT NULL")
        == 0
    )
    assert await redis.keys("q:*") == []


async def test_a_tenant_without_whatsapp_leads_between_two_with_them_keeps_each_reservation_its_own(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    """The reservations of a group go in one pipeline; a tenant with nothing to reserve in the middle
    must not shift the others' answers."""
    first, last = await tenant_with_leads(factory, 2), await tenant_with_leads(factory, 3)
    middle = await factory.tenant(**ALWAYS_OPEN)
    await factory.leads(middle, 2, company={"telefon_principal": None})  # e-mail only

    result = await run_dispatch(deps, "ALL", tenantIds=[str(first), str(middle), str(last)])

    by_tenant = {r["tenantId"]: r for r in result["tenantResults"]}
    assert [by_tenant[str(t)]["dispatchedToWhatsApp"] for t in (first, middle, last)] == [2, 0, 3]
    assert by_tenant[str(middle)]["dispatchedToEmail"] == 2
    for tenant, count in ((first, 2), (last, 3)):
        jobs = [j for j in by_tenant[str(tenant)]["jobsCreated"] if j["channel"] == "WHATSAPP"]
        phone = await factory.scalar("SELECT id FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant)
        assert len(jobs) == count
        assert {UUID(j["phoneId"]) for j in jobs} == {phone}
        assert all(j["scheduledAt"] is not None for j in jobs)
    (await ledger(factory.engine, redis, today)).assert_clean()


async def test_tenants_whose_window_is_closed_wait_and_the_open_ones_go(
    deps: Deps, factory: Factory, clock: FixedClock
) -> None:
    closed = [await factory.tenant(), await factory.tenant()]  # weekdays 09:00-18:00, Romanian holidays
    for tenant, leads in zip(closed, (3, 7), strict=True):
        await factory.phone(tenant)
        await factory.leads(tenant, leads)
    always = await tenant_with_leads(factory, 2)
    clock.now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday
    asked = [closed[0], always, closed[1]]

    result = await run_dispatch(deps, "ALL", tenantIds=[str(t) for t in asked], batchSize=5)

    assert [r["tenantId"] for r in result["tenantResults"]] == [str(t) for t in asked]  # in the order asked
    by_tenant = {r["tenantId"]: r for r in result["tenantResults"]}
    waiting = [
        (by_tenant[str(t)]["outsideSendingWindow"], by_tenant[str(t)]["skippedOutsideHours"]) for t in closed
    ]
    assert waiting == [(True, 3), (True, 5)]  # at most the batch, as their own dispatch counts
    assert by_tenant[str(closed[0])]["nextDispatchAt"] == "2026-12-02T07:00:00Z"  # 30 Nov, 1 Dec: holidays
    assert by_tenant[str(always)]["totalEligibleLeads"] == 2
    assert result["skippedOutsideHours"] == 8
    untouched = "SELECT count(*) FROM gold_lead_journey WHERE tenant_id = :t AND last_dispatched_at IS NULL"
    assert [await factory.scalar(untouched, t=t) for t in asked] == [3, 0, 7]
