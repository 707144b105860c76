"""dispatch's reservation step: the batch's WhatsApp sends reserved in Redis, atomically over the phones'
quota, their pacing slots and the tenant's portfolio budget (src/redis_io/quota_ledger.py), and each
decision settled on what was reserved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from src.domain.allocation import is_available
from src.domain.dispatch import Decision, Reserved, settle_reservations
from src.domain.senders import Shortfall, SlotRequest, plan_slots, slot_bounds
from src.redis_io.quota_ledger import Frame, PhoneLimit, Reservation, ReservationRequest, ReserveCall
from src.runtime import metrics
from src.runtime.clock import epoch_ms
from src.runtime.deps import Deps

if TYPE_CHECKING:
    from src.jobs.dispatch.batch import Batch, Plan


async def reserve(deps: Deps, plan: Plan) -> Plan:
    """Reserve the WhatsApp sends in Redis, atomically (quota, pacing slot, portfolio budget), and settle
    each decision on what was reserved: a concurrent dispatch may have taken the room the local plan
    counted on. New contacts ask first, so they take the earlier slots of the batch."""
    call = _call(plan)
    if call is None:
        return plan
    reservations, counters = await deps.quota.reserve(
        tenant_id=call.tenant_id,
        quota_date=call.quota_date,
        phones=call.phones,
        requests=call.requests,
        frame=call.frame,
    )
    return _settled(plan, reservations, counters)


async def reserve_all(deps: Deps, plans: Sequence[Plan]) -> list[Plan]:
    """`reserve` of several tenants' plans in one round trip."""
    calls = [_call(plan) for plan in plans]
    made = iter(await deps.quota.reserve_many([call for call in calls if call is not None]))
    return [
        plan if call is None else _settled(plan, *next(made)) for plan, call in zip(plans, calls, strict=True)
    ]


def _whatsapp(plan: Plan) -> list[Decision]:
    """The WhatsApp decisions, new contacts first."""
    return sorted((d for d in plan.decisions if d.is_whatsapp), key=lambda d: not d.is_new_contact)


def _call(plan: Plan) -> ReserveCall | None:
    """The reservation of the plan's WhatsApp sends; None when it has none to reserve."""
    batch = plan.batch
    requests = [
        _request(batch, d, plan.job_ids[d.lead.journey_id]) for d in _whatsapp(plan) if d.phone_id is not None
    ]
    if not requests:
        return None
    available = [PhoneLimit(p.id, p.daily_limit) for p in batch.phones if is_available(p, batch.tenant_id)]
    return ReserveCall(batch.tenant_id, batch.today, available, requests, _frame(batch))


def _settled(plan: Plan, reservations: list[Reservation], counters: dict[UUID, int]) -> Plan:
    batch = plan.batch
    whatsapp = [d for d in plan.decisions if d.is_whatsapp]
    for phone in batch.phones:
        if phone.id in counters:
            metrics.set_quota(str(phone.id), str(batch.tenant_id), counters[phone.id], phone.daily_limit)
    by_job = {r.job_id: r for r in reservations}
    reserved = {d.lead.journey_id: _reserved(by_job[plan.job_ids[d.lead.journey_id]]) for d in whatsapp}
    return replace(plan, decisions=settle_reservations(plan.decisions, reserved))


def _request(batch: Batch, decision: Decision, job_id: str) -> ReservationRequest:
    assert decision.phone_id is not None
    fall_through = decision.lead.sticky_phone_id != decision.phone_id
    gap_ms = batch.pace.gap_ms(job_id)
    return ReservationRequest(job_id, decision.phone_id, fall_through, decision.recipient, gap_ms)


def _frame(batch: Batch) -> Frame:
    """The batch's slots fall in the opening of the window that holds now, on today's quota date."""
    bounds = slot_bounds(batch.window, batch.now)
    assert bounds is not None, "dispatch reserves only while the window is open"
    opens, closes = bounds
    return Frame(epoch_ms(batch.now), epoch_ms(opens), epoch_ms(closes), batch.portfolio_limit)


def _reserved(reservation: Reservation) -> Reserved:
    slot = reservation.slot_ms
    at = datetime.fromtimestamp(slot / 1000, UTC) if slot is not None else None
    return Reserved(reservation.phone_id, at, reservation.shortfall)


async def plan_slots_dry(deps: Deps, plan: Plan) -> Plan:
    """A dry run's WhatsApp slots: what `reserve` would schedule, from the same Redis state, without
    writing anything (src/domain/senders.py plan_slots mirrors the script)."""
    batch = plan.batch
    whatsapp = sorted((d for d in plan.decisions if d.is_whatsapp), key=lambda d: not d.is_new_contact)
    if not whatsapp:
        return plan
    frame = _frame(batch)
    free, spent, seen = await deps.quota.schedule_state(
        tenant_id=batch.tenant_id,
        quota_date=batch.today,
        phone_ids=[p.id for p in batch.phones],
        recipients=[d.recipient for d in whatsapp if d.recipient],
        now_ms=frame.now_ms,
    )
    requests = [
        SlotRequest(
            d.lead.journey_id, d.phone_id, batch.pace.gap_ms(plan.job_ids[d.lead.journey_id]), d.recipient
        )
        for d in whatsapp
        if d.phone_id is not None
    ]
    budget = None if batch.portfolio_limit is None else batch.portfolio_limit - spent
    planned = plan_slots(
        requests,
        free_ms=free,
        bounds_ms=(frame.now_ms, frame.opens_ms, frame.closes_ms),
        budget_left=budget,
        seen=seen,
    )
    reserved = {
        d.lead.journey_id: _planned(d, planned[d.lead.journey_id])
        for d in whatsapp
        if d.lead.journey_id in planned
    }
    return replace(plan, decisions=settle_reservations(plan.decisions, reserved))


def _planned(decision: Decision, planned: int | Shortfall) -> Reserved:
    if isinstance(planned, Shortfall):
        return Reserved(None, shortfall=planned)
    return Reserved(decision.phone_id, datetime.fromtimestamp(planned / 1000, UTC))
