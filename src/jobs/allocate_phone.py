"""allocate_phone: the lead's sticky phone, or a new one drawn by remaining quota, written conditionally."""

from __future__ import annotations

from datetime import date

from loguru import logger

from src.contracts import AllocationType, PhoneAllocationJobData, Wire
from src.db import queries
from src.domain.allocation import Allocation, AllocationReason, PhoneState, allocate, deciding_counters
from src.domain.quota import quota_date
from src.errors import NotFound
from src.jobs.base import JobInfo, job
from src.names import Function, whatsapp_queue
from src.runtime import metrics
from src.runtime.deps import Deps
from src.runtime.faults import Contention


@job(Function.ALLOCATE_PHONE, PhoneAllocationJobData)
async def allocate_phone(deps: Deps, data: PhoneAllocationJobData, info: JobInfo) -> Wire:
    now = deps.clock()
    async with deps.pg.acquire() as conn:
        found = await queries.allocation_context(
            conn, tenant_id=data.tenant_id, lead_id=data.lead_id, prefer_existing=data.prefer_existing
        )
        if found is None:
            raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
        today = quota_date(now, found.tenant_timezone)
        current = previous = found.assigned_phone_id
        read = deciding_counters(
            tenant_id=data.tenant_id,
            sticky_phone_id=current,
            phones=found.phones,
            prefer_existing=data.prefer_existing,
        )
        used = await deps.quota.used([p.id for p in read], today)
        phones = {p.id: p.state(used[p.id]) for p in read}
        allocation = allocate(
            tenant_id=data.tenant_id,
            sticky_phone_id=current,
            phones=list(phones.values()),
            prefer_existing=data.prefer_existing,
            rng=deps.rng,
        )
        if allocation.phone_id is not None and allocation.kind is not AllocationType.STICKY:
            won = await queries.set_sticky_phone(
                conn,
                tenant_id=data.tenant_id,
                lead_id=data.lead_id,
                phone_id=allocation.phone_id,
                expected=current,
                now=now,
            )
            if not won:
                # A concurrent allocation changed the lead first: its phone is the answer for both,
                # as long as it is a phone this lead can use.
                current = await queries.sticky_phone_of(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
                allocation = allocate(
                    tenant_id=data.tenant_id,
                    sticky_phone_id=current,
                    phones=list(phones.values()),
                    prefer_existing=True,
                    rng=deps.rng,
                )
                if allocation.kind is not AllocationType.STICKY:
                    raise Contention(
                        f"lead {data.lead_id} was reassigned concurrently to an unusable phone {current}"
                    )

    phone = phones.get(allocation.phone_id) if allocation.phone_id else None
    if phone is not None:
        metrics.set_quota(str(phone.id), str(data.tenant_id), phone.used_today, phone.daily_limit)
    logger.debug("lead {}: {} {} ({})", data.lead_id, allocation.kind, allocation.phone_id, allocation.reason)
    # The PhoneAllocationResult contract, as its JSON form (the integration tests check it against the model).
    return {
        "leadId": str(data.lead_id),
        "allocatedPhoneId": str(allocation.phone_id) if allocation.phone_id else None,
        "allocationType": allocation.kind.value if allocation.kind else None,
        "phoneQuotaStatus": _quota_status(phone, today),
        "reason": _describe(allocation, phone),
        "previousPhoneId": str(previous) if previous and previous != allocation.phone_id else None,
        "queue": whatsapp_queue(phone.queue_slot) if phone else None,
    }


def _quota_status(phone: PhoneState | None, today: date) -> Wire | None:
    if phone is None:
        return None
    return {
        "currentUsage": phone.used_today,
        "remaining": phone.remaining,
        "dailyLimit": phone.daily_limit,
        "quotaDate": today.isoformat(),
    }


def _describe(allocation: Allocation, phone: PhoneState | None) -> str:
    room = f"{phone.remaining} of {phone.daily_limit} left today" if phone else ""
    match allocation.reason:
        case AllocationReason.STICKY:
            return f"{AllocationReason.STICKY}: existing sticky assignment ({room})"
        case AllocationReason.STICKY_QUOTA_EXHAUSTED:
            return f"{AllocationReason.STICKY_QUOTA_EXHAUSTED}: sticky phone kept, no quota left today"
        case AllocationReason.NEW_PHONE:
            return f"{AllocationReason.NEW_PHONE}: drawn by remaining quota ({room})"
        case AllocationReason.FALLBACK_STICKY_UNAVAILABLE:
            return f"{AllocationReason.FALLBACK_STICKY_UNAVAILABLE}: sticky phone unavailable ({room})"
        case AllocationReason.NO_PHONE_WITH_QUOTA:
            return f"{AllocationReason.NO_PHONE_WITH_QUOTA}: no available phone has quota left today"
