"""allocate_phone: the lead's sticky phone, or a new one drawn by remaining quota, written conditionally.

Steps: load the lead, its tenant and the phones its decision can involve; refuse a lead that may get no
WhatsApp message; read today's counters of those phones; draw; and when the draw changes the lead's
phone, write it on the condition that nobody else changed it first.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from asyncpg import Connection
from loguru import logger

from src import results
from src.contracts import AllocationType, PhoneAllocationJobData
from src.db import queries
from src.domain.allocation import Allocation, PhoneState, allocate, deciding_counters
from src.domain.lead_gate import whatsapp_refusal
from src.errors import NotFound
from src.jobs.base import JobInfo, job
from src.jobs.tenant import sending_window
from src.names import Function, whatsapp_queue
from src.results import Wire
from src.runtime import metrics
from src.runtime.deps import Deps
from src.runtime.faults import Contention


@job(Function.ALLOCATE_PHONE, PhoneAllocationJobData)
async def allocate_phone(deps: Deps, data: PhoneAllocationJobData, info: JobInfo) -> Wire:
    now = deps.clock()
    async with deps.pg.acquire() as conn:
        lead = await queries.allocation_context(
            conn, tenant_id=data.tenant_id, lead_id=data.lead_id, prefer_existing=data.prefer_existing
        )
        if lead is None:
            raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
        today = sending_window(lead.tenant).local_date(now)
        refusal = whatsapp_refusal(lead.standing)
        if refusal is not None:
            return results.phone_refused(lead_id=data.lead_id, refusal=refusal, standing=lead.standing)
        phones = await _phones_today(deps, data, lead, today)
        allocation = _draw(deps, data, lead.assigned_phone_id, phones, prefer_existing=data.prefer_existing)
        if allocation.phone_id is not None and allocation.kind is not AllocationType.STICKY:
            allocation = await _assign(conn, deps, data, lead.assigned_phone_id, phones, allocation, now)

    phone = phones.get(allocation.phone_id) if allocation.phone_id else None
    if phone is not None:
        metrics.set_quota(str(phone.id), str(data.tenant_id), phone.used_today, phone.daily_limit)
    logger.debug("lead {}: {} {} ({})", data.lead_id, allocation.kind, allocation.phone_id, allocation.reason)
    return results.phone_allocation(
        lead_id=data.lead_id,
        allocation=allocation,
        phone=phone,
        quota_date=today,
        previous_phone_id=lead.assigned_phone_id,
        queue=whatsapp_queue(phone.queue_slot) if phone else None,
    )


async def _phones_today(
    deps: Deps, data: PhoneAllocationJobData, lead: queries.AllocationContext, today: date
) -> dict[UUID, PhoneState]:
    """The phones the draw looks at, with today's counters: the sticky phone alone when it is kept."""
    read = deciding_counters(
        tenant_id=data.tenant_id,
        sticky_phone_id=lead.assigned_phone_id,
        phones=lead.phones,
        prefer_existing=data.prefer_existing,
    )
    used = await deps.quota.used([p.id for p in read], today)
    return {p.id: p.state(count, today) for p, count in zip(read, used.values(), strict=True)}


def _draw(
    deps: Deps,
    data: PhoneAllocationJobData,
    sticky_phone_id: UUID | None,
    phones: dict[UUID, PhoneState],
    *,
    prefer_existing: bool,
) -> Allocation:
    return allocate(
        tenant_id=data.tenant_id,
        sticky_phone_id=sticky_phone_id,
        phones=list(phones.values()),
        prefer_existing=prefer_existing,
        rng=deps.rng,
    )


async def _assign(
    conn: Connection,
    deps: Deps,
    data: PhoneAllocationJobData,
    expected: UUID | None,
    phones: dict[UUID, PhoneState],
    allocation: Allocation,
    now: datetime,
) -> Allocation:
    """Write the drawn phone unless a concurrent allocation changed the lead first; then its phone is the
    answer for both, as long as it is a phone this lead can use."""
    assert allocation.phone_id is not None
    won = await queries.set_sticky_phone(
        conn,
        tenant_id=data.tenant_id,
        lead_id=data.lead_id,
        phone_id=allocation.phone_id,
        expected=expected,
        now=now,
    )
    if won:
        return allocation
    current = await queries.sticky_phone_of(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
    theirs = _draw(deps, data, current, phones, prefer_existing=True)
    if theirs.kind is not AllocationType.STICKY:
        raise Contention(f"lead {data.lead_id} was reassigned concurrently to an unusable phone {current}")
    return theirs
