"""Every job's result, in each of its outcomes, is exactly what its contract model writes.

The jobs return dicts built by src/results.py rather than dumping the pydantic models of src/contracts.py
(the models cost more than the jobs' own work). This one test holds the two together: each scenario runs
a real job into one outcome, and the result must round-trip through its model unchanged, field for field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from src.contracts import ChannelSelectionResult, DispatchResult, PhoneAllocationResult, RouterResult
from src.domain.quota import quota_date
from src.jobs.allocate_phone import allocate_phone
from src.jobs.dispatch import dispatch
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.names import quota_key
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import checked, follow_up, job_ctx
from tests.support.tenants import ALWAYS_OPEN

# A job's result in one outcome: its contract model, the result, and the outcome the scenario reached.
Outcome = tuple[type[BaseModel], dict[str, Any], str]
Scenario = Callable[[Deps, Factory], Awaitable[Outcome]]


async def _use_up(deps: Deps, phone: UUID) -> None:
    day = quota_date(deps.clock(), "Europe/Bucharest")
    await deps.redis.set(quota_key(phone, day), 200)


async def select(deps: Deps, factory: Factory, *, status: str = "ACTIVE", **company: Any) -> dict[str, Any]:
    tenant = await factory.tenant(**ALWAYS_OPEN, status=status)
    await factory.phone(tenant)
    lead = await factory.lead(tenant, company=company)
    return await select_channel(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})


async def selected(deps: Deps, factory: Factory) -> Outcome:
    result = await select(deps, factory)
    return ChannelSelectionResult, result, result["selectedChannel"]


async def no_channel(deps: Deps, factory: Factory) -> Outcome:
    result = await select(deps, factory, hlr_reachable=False, email_status="invalid")
    return ChannelSelectionResult, result, result["reasonCode"]


async def selection_suspended(deps: Deps, factory: Factory) -> Outcome:
    result = await select(deps, factory, status="SUSPENDED")
    return ChannelSelectionResult, result, result["reasonCode"]


async def allocation(
    deps: Deps,
    factory: Factory,
    *,
    sticky: str | None = None,
    full: bool = False,
    tenant_status: str = "ACTIVE",
    **lead: Any,
) -> Outcome:
    """allocate_phone of a new lead; reached: its allocationType (none when no phone is allocated) and
    its reason code."""
    tenant = await factory.tenant(**ALWAYS_OPEN, status=tenant_status)
    phone = await factory.phone(tenant)
    journey: dict[str, Any] = dict(lead)
    if sticky is not None:
        journey["assigned_phone_id"] = await factory.phone(tenant, status=sticky)
        if full:
            await _use_up(deps, journey["assigned_phone_id"])
    elif full:
        await _use_up(deps, phone)
    lead = await factory.lead(tenant, **journey)
    result = await allocate_phone(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})
    kind = result["allocationType"]
    code = result["reason"].split(":")[0]
    return PhoneAllocationResult, result, f"{kind} {code}" if kind else code


async def allocated_new(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory)


async def allocated_sticky(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE")


async def allocated_fallback(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="BANNED")


async def sticky_full(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE", full=True)


async def none_left(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, full=True)


async def allocation_suspended(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE", tenant_status="SUSPENDED")


async def allocation_terminal(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE", engagement_stage="CONVERTED")


async def allocation_held(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE", requires_human_review=True)


async def allocation_opted_out(deps: Deps, factory: Factory) -> Outcome:
    return await allocation(deps, factory, sticky="ACTIVE", whatsapp_opted_out=True)


async def send(
    deps: Deps,
    factory: Factory,
    *,
    status: str = "ACTIVE",
    full: bool = False,
    twice: bool = False,
    tenant_row: dict[str, Any] | None = None,
    without_tenant: bool = False,
    **journey: Any,
) -> dict[str, Any]:
    tenant = await factory.tenant(**{**ALWAYS_OPEN, **(tenant_row or {})})
    phone = await factory.phone(tenant, status=status)
    other = await factory.phone(tenant)
    if full:
        await _use_up(deps, phone)
        await _use_up(deps, other)
    lead = await factory.lead(tenant, **journey)
    payload = {"tenantId": str(tenant), **follow_up(lead, phone)}
    if without_tenant:
        del payload["tenantId"]
    result = await route(job_ctx(deps, job_id="router-contract"), payload)
    if twice:
        result = await route(job_ctx(deps, job_id="router-contract"), payload)
    return result


async def routed(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory)
    return RouterResult, result, result["reason"]


async def rerouted(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, status="PAUSED")
    return RouterResult, result, result["reason"]


async def routed_again(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, twice=True)
    return RouterResult, result, result["reason"].split(":")[0]


async def routed_without_tenant(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, without_tenant=True)
    return RouterResult, result, f"{result['reason']} for the lead's tenant"


async def routed_later(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, tenant_row=window_from_tomorrow(deps))
    return RouterResult, result, f"{result['reason']} deferred" if result["deferred"] else "not deferred"


async def route_suspended(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, tenant_row={"status": "SUSPENDED"})
    return RouterResult, result, result["reason"].split(":")[0]


async def route_terminal(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, engagement_stage="DEAD")
    return RouterResult, result, result["reason"].split(":")[0]


async def route_held(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, requires_human_review=True)
    return RouterResult, result, result["reason"].split(":")[0]


async def opted_out(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, whatsapp_opted_out=True)
    return RouterResult, result, result["reason"].split(":")[0]


async def quota_spent(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, full=True)
    return RouterResult, result, result["reason"].split(":")[0]


async def nowhere_to_reroute(deps: Deps, factory: Factory) -> Outcome:
    result = await send(deps, factory, status="BANNED", full=True)
    return RouterResult, result, result["reason"].split(":")[0]


async def run_dispatch(
    deps: Deps, factory: Factory, *, tenant_id: str | None = None, dry_run: bool = False, **window: Any
) -> dict[str, Any]:
    tenant = await factory.tenant(**(window or ALWAYS_OPEN))
    await factory.phone(tenant)
    await factory.leads(tenant, 2)
    await factory.lead(tenant, company={"hlr_reachable": False})
    await factory.lead(tenant, company={"hlr_reachable": False, "email_status": "invalid"})
    payload: dict[str, Any] = {"correlationId": "contract", "tenantId": tenant_id or str(tenant)}
    if dry_run:
        payload["dryRun"] = True
    return await dispatch(job_ctx(deps, job_id="dispatch-contract"), payload)


async def dispatched(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory)
    return DispatchResult, result, f"{result['dispatchedToWhatsApp']}+{result['dispatchedToEmail']}"


async def planned(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory, dry_run=True)
    return DispatchResult, result, f"dry {result['dispatchedToWhatsApp']}+{result['dispatchedToEmail']}"


def window_from_tomorrow(deps: Deps) -> dict[str, Any]:
    """A window open only on tomorrow's weekday."""
    local_day = deps.clock().astimezone(ZoneInfo("Europe/Bucharest")).isoweekday()
    return {**ALWAYS_OPEN, "send_days": [local_day % 7 + 1]}


async def outside_window(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory, **window_from_tomorrow(deps))
    return DispatchResult, result, f"outside {result['skippedOutsideHours']}"


async def fan_out(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory, tenant_id="ALL")
    return DispatchResult, result, f"tenant jobs {len(result['tenantJobs'])}"


async def fan_out_dry_run(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory, tenant_id="ALL", dry_run=True)
    return DispatchResult, result, f"tenant plans {len(result['tenantPlans'])}"


async def fan_out_left_out(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(deps, factory, tenant_id="ALL", **ALWAYS_OPEN, timezone="Mars/Olympus")
    return DispatchResult, result, f"tenant errors {len(result['tenantErrors'])}"


async def fan_out_dry_run_left_out(deps: Deps, factory: Factory) -> Outcome:
    result = await run_dispatch(
        deps, factory, tenant_id="ALL", dry_run=True, **ALWAYS_OPEN, timezone="Mars/Olympus"
    )
    return DispatchResult, result, f"dry tenant errors {len(result['tenantErrors'])}"


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [
        (selected, "WHATSAPP"),
        (no_channel, "NO_VERIFIED_CONTACT"),
        (selection_suspended, "TENANT_SUSPENDED"),
        (allocated_new, "NEW NEW_PHONE"),
        (allocated_sticky, "STICKY STICKY"),
        (allocated_fallback, "FALLBACK FALLBACK_STICKY_UNAVAILABLE"),
        (sticky_full, "STICKY STICKY_QUOTA_EXHAUSTED"),
        (none_left, "NO_PHONE_WITH_QUOTA"),
        (allocation_suspended, "TENANT_SUSPENDED"),
        (allocation_terminal, "TERMINAL_STAGE"),
        (allocation_held, "HELD_FOR_REVIEW"),
        (allocation_opted_out, "WHATSAPP_OPTED_OUT"),
        (routed, "ROUTED"),
        (rerouted, "REROUTED_PHONE_UNAVAILABLE"),
        (routed_again, "ALREADY_ROUTED"),
        (routed_without_tenant, "ROUTED for the lead's tenant"),
        (routed_later, "ROUTED deferred"),
        (route_suspended, "TENANT_SUSPENDED"),
        (route_terminal, "TERMINAL_STAGE"),
        (route_held, "HELD_FOR_REVIEW"),
        (opted_out, "WHATSAPP_OPTED_OUT"),
        (quota_spent, "QUOTA_EXHAUSTED"),
        (nowhere_to_reroute, "NO_PHONE_WITH_QUOTA"),
        (dispatched, "2+1"),
        (planned, "dry 2+1"),
        (outside_window, "outside 4"),
        (fan_out, "tenant jobs 1"),
        (fan_out_dry_run, "tenant plans 1"),
        (fan_out_left_out, "tenant errors 1"),
        (fan_out_dry_run_left_out, "dry tenant errors 1"),
    ],
    ids=lambda value: getattr(value, "__name__", None) or str(value),
)
async def test_every_result_is_its_contract_model(
    deps: Deps, factory: Factory, redis: Redis, scenario: Scenario, outcome: str
) -> None:
    model, result, reached = await scenario(deps, factory)
    assert reached == outcome  # the scenario reached the outcome it names
    checked(model, result)
