"""route: one message to its phone's queue, rerouted when the phone is no longer available."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from loguru import logger

from src.contracts import MessageType, RouterJobData, Wire
from src.db import queries
from src.domain.allocation import AllocationReason, allocate, is_available
from src.domain.quota import quota_date
from src.errors import NotFound, TenantMismatch
from src.jobs.base import JobInfo, job
from src.names import SEND_WHATSAPP_FOLLOWUP, SEND_WHATSAPP_INITIAL, Function, routed_job_id, whatsapp_queue
from src.redis_io.job_writer import OutgoingJob
from src.redis_io.quota_ledger import PhoneLimit, Reservation, ReservationRequest
from src.runtime.deps import Deps


def _result(
    *,
    routed: bool,
    reason: str,
    target_queue: str | None = None,
    job_id: str | None = None,
    phone_id: UUID | None = None,
    rerouted_from: UUID | None = None,
    enqueued: bool = False,
) -> Wire:
    """The RouterResult contract, as its JSON form (the integration tests check it against the model)."""
    return {
        "routed": routed,
        "targetQueue": target_queue,
        "jobId": job_id,
        "phoneId": str(phone_id) if phone_id else None,
        "reroutedFrom": str(rerouted_from) if rerouted_from else None,
        "enqueued": enqueued,
        "reason": reason,
    }


def _not_routed(reason: str, *, phone_id: UUID | None = None, rerouted_from: UUID | None = None) -> Wire:
    return _result(routed=False, reason=reason, phone_id=phone_id, rerouted_from=rerouted_from)


@job(Function.ROUTE, RouterJobData)
async def route(deps: Deps, data: RouterJobData, info: JobInfo) -> Wire:
    now = deps.clock()
    target_job_id = routed_job_id(info.job_id)
    async with deps.pg.acquire() as conn:
        found = await queries.route_context(
            conn, tenant_id=data.tenant_id, lead_id=data.lead_id, phone_id=data.phone_id
        )
        if found is None:
            raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
        if found.phone is None:
            if await queries.phone_owner(conn, phone_id=data.phone_id) is None:
                raise NotFound(f"phone {data.phone_id} not found")
            raise TenantMismatch(
                f"phone {data.phone_id} belongs to another tenant than tenant {data.tenant_id} "
                f"of lead {data.lead_id}"
            )
    if found.whatsapp_opted_out:
        return _not_routed("WHATSAPP_OPTED_OUT: the lead opted out of WhatsApp", phone_id=data.phone_id)

    today = quota_date(now, found.tenant_timezone)
    followup = data.message_type is MessageType.FOLLOWUP
    now_ms = deps.clock.wall_ms(now)
    slots = {data.phone_id: found.phone.queue_slot}

    def job_on(phone_id: UUID) -> OutgoingJob:
        payload = {
            **data.payload,
            "tenantId": str(data.tenant_id),
            "leadId": str(data.lead_id),
            "phoneId": str(phone_id),
        }
        if data.correlation_id:
            payload["correlationId"] = data.correlation_id
        queue = whatsapp_queue(slots[phone_id], followup=followup)
        function = SEND_WHATSAPP_FOLLOWUP if followup else SEND_WHATSAPP_INITIAL
        return OutgoingJob(target_job_id, queue, function, payload)

    target, rerouted_from = data.phone_id, None
    written: bool | None = None
    if is_available(found.phone, data.tenant_id):
        # The usual case: that phone or nothing, reserved and enqueued in one round trip. Only its own
        # counter is read (by the reservation).
        reservation, written = await deps.quota.reserve_and_enqueue(
            tenant_id=data.tenant_id,
            quota_date=today,
            phone=PhoneLimit(target, found.phone.daily_limit),
            available=found.available_ids,
            job=job_on(target),
            now_ms=now_ms,
        )
    else:
        rerouted_from = data.phone_id
        rerouted = await _reroute(deps, data, target_job_id, today, slots)
        if rerouted is None:
            return _not_routed(
                f"{AllocationReason.NO_PHONE_WITH_QUOTA}: phone {data.phone_id} is down, none has quota",
                rerouted_from=data.phone_id,
            )
        reservation = rerouted
    if reservation.phone_id is None:
        return _not_routed(
            f"QUOTA_EXHAUSTED: phone {target} has no WhatsApp quota left on {today}",
            phone_id=target,
            rerouted_from=rerouted_from,
        )
    target = reservation.phone_id
    if target not in slots:
        # Reserved elsewhere: a reroute, or an earlier try of this job that reserved another phone.
        async with deps.pg.acquire() as conn:
            phones = await queries.available_phones(conn, tenant_id=data.tenant_id)
        slots.update((p.id, p.queue_slot) for p in phones)
    if rerouted_from is not None and found.assigned_phone_id == rerouted_from:
        async with deps.pg.acquire() as conn:
            await queries.set_sticky_phone(
                conn,
                tenant_id=data.tenant_id,
                lead_id=data.lead_id,
                phone_id=target,
                expected=rerouted_from,
                now=now,
            )

    outgoing = job_on(target)
    queue = outgoing.queue
    if written is None:
        [written] = await deps.outbound.enqueue([outgoing], now_ms=now_ms)

    reason = "REROUTED_PHONE_UNAVAILABLE" if rerouted_from else "ROUTED"
    if not written:
        reason = "ALREADY_ROUTED: the target job exists (a retried router job)"
    logger.debug("lead {} -> {} as {} ({})", data.lead_id, queue, target_job_id, reason)
    return _result(
        routed=True,
        reason=reason,
        target_queue=queue,
        job_id=target_job_id,
        phone_id=target,
        rerouted_from=rerouted_from,
        enqueued=written,
    )


async def _reroute(
    deps: Deps, data: RouterJobData, target_job_id: str, today: date, slots: dict[UUID, str]
) -> Reservation | None:
    """A reservation on another phone, for a message whose phone is no longer available; None when no
    available phone has quota left. A retried router job keeps the phone its first try reserved. Adds the
    queue slots of the tenant's available phones to `slots`."""
    async with deps.pg.acquire() as conn:
        rows = await queries.available_phones(conn, tenant_id=data.tenant_id)
    slots.update((row.id, row.queue_slot) for row in rows)
    used = await deps.quota.used([row.id for row in rows], today)
    phones = {row.id: row.state(used[row.id]) for row in rows}
    earlier = await deps.quota.reserved(tenant_id=data.tenant_id, quota_date=today, job_ids=[target_job_id])
    target = earlier.get(target_job_id)
    if target not in phones:
        allocation = allocate(
            tenant_id=data.tenant_id,
            sticky_phone_id=data.phone_id,
            phones=list(phones.values()),
            prefer_existing=False,
            rng=deps.rng,
        )
        if allocation.phone_id is None:
            return None
        target = allocation.phone_id
    [reservation], _ = await deps.quota.reserve(
        tenant_id=data.tenant_id,
        quota_date=today,
        phones=[PhoneLimit(row.id, row.daily_limit) for row in rows],
        requests=[ReservationRequest(target_job_id, target, fall_through=True)],
    )
    return reservation
