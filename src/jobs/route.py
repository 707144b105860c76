"""route: one message to its phone's queue, rerouted when the phone is no longer available."""

from __future__ import annotations

from uuid import UUID

from loguru import logger

from src.contracts import MessageType, RouterJobData, RouterResult
from src.db import queries
from src.deps import Deps
from src.domain.allocation import allocate, is_available
from src.domain.quota import quota_date
from src.errors import NotFound, TenantMismatch
from src.jobs.base import JobInfo, job
from src.names import SEND_WHATSAPP_FOLLOWUP, SEND_WHATSAPP_INITIAL, Function, routed_job_id, whatsapp_queue
from src.outbound import OutgoingJob
from src.quota import PhoneLimit, ReservationRequest


def _not_routed(
    reason: str, *, phone_id: UUID | None = None, rerouted_from: UUID | None = None
) -> RouterResult:
    return RouterResult(
        routed=False,
        target_queue=None,
        job_id=None,
        phone_id=phone_id,
        rerouted_from=rerouted_from,
        enqueued=False,
        reason=reason,
    )


@job(Function.ROUTE, RouterJobData)
async def route(deps: Deps, data: RouterJobData, info: JobInfo) -> RouterResult:
    now = deps.clock()
    target_job_id = routed_job_id(info.job_id)
    async with deps.pg.acquire() as conn:
        loaded = await queries.load_lead_with_phones(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
        if loaded is None:
            raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
        found, rows = loaded
        phone_rows = {row.id: row for row in rows}
        if data.phone_id not in phone_rows:
            if await queries.phone_owner(conn, phone_id=data.phone_id) is None:
                raise NotFound(f"phone {data.phone_id} not found")
            raise TenantMismatch(
                f"phone {data.phone_id} belongs to another tenant than tenant {data.tenant_id} "
                f"of lead {data.lead_id}"
            )
    if found.lead.whatsapp_opted_out:
        return _not_routed("WHATSAPP_OPTED_OUT: the lead opted out of WhatsApp", phone_id=data.phone_id)

    today = quota_date(now, found.tenant_timezone)
    followup = data.message_type is MessageType.FOLLOWUP
    now_ms = int(now.timestamp() * 1000)

    def job_on(phone_id: UUID) -> OutgoingJob:
        payload = {
            **data.payload,
            "tenantId": str(data.tenant_id),
            "leadId": str(data.lead_id),
            "phoneId": str(phone_id),
        }
        if data.correlation_id:
            payload["correlationId"] = data.correlation_id
        queue = whatsapp_queue(phone_rows[phone_id].queue_slot, followup=followup)
        function = SEND_WHATSAPP_FOLLOWUP if followup else SEND_WHATSAPP_INITIAL
        return OutgoingJob(target_job_id, queue, function, payload)

    available = [row for row in phone_rows.values() if is_available(row, data.tenant_id)]
    target, rerouted_from = data.phone_id, None
    written: bool | None = None
    if is_available(phone_rows[data.phone_id], data.tenant_id):
        # The usual case: that phone or nothing, reserved and enqueued in one round trip. Only its own
        # counter is read (by the reservation).
        reservation, written = await deps.quota.reserve_and_enqueue(
            tenant_id=data.tenant_id,
            quota_date=today,
            phone=PhoneLimit(target, phone_rows[target].daily_limit),
            available=[row.id for row in available],
            job=job_on(target),
            now_ms=now_ms,
        )
    else:
        rerouted_from = data.phone_id
        used = await deps.quota.used(list(phone_rows), today)
        phones = {pid: row.state(used[pid]) for pid, row in phone_rows.items()}
        # A retried router job keeps the phone its first try reserved (already in the counters).
        earlier = await deps.quota.reserved(
            tenant_id=data.tenant_id, quota_date=today, job_ids=[target_job_id]
        )
        kept = earlier.get(target_job_id)
        if kept in phones and is_available(phones[kept], data.tenant_id):
            target = kept
        else:
            allocation = allocate(
                tenant_id=data.tenant_id,
                sticky_phone_id=data.phone_id,
                phones=list(phones.values()),
                prefer_existing=False,
                rng=deps.rng,
            )
            if allocation.phone_id is None:
                return _not_routed(
                    f"{allocation.reason}: phone {data.phone_id} is down, no other phone has quota",
                    rerouted_from=data.phone_id,
                )
            target = allocation.phone_id
        [reservation], _ = await deps.quota.reserve(
            tenant_id=data.tenant_id,
            quota_date=today,
            phones=[PhoneLimit(row.id, row.daily_limit) for row in available],
            requests=[ReservationRequest(target_job_id, target, fall_through=True)],
        )
    if reservation.phone_id is None:
        return _not_routed(
            f"QUOTA_EXHAUSTED: phone {target} has no WhatsApp quota left on {today}",
            phone_id=target,
            rerouted_from=rerouted_from,
        )
    target = reservation.phone_id
    if rerouted_from is not None and found.lead.assigned_phone_id == rerouted_from:
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
    return RouterResult(
        routed=True,
        target_queue=queue,
        job_id=target_job_id,
        phone_id=target,
        rerouted_from=rerouted_from,
        enqueued=written,
        reason=reason,
    )
