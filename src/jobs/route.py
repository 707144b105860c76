"""route: one message to its phone's queue, rerouted when the phone is no longer available.

Steps: load the lead and the phone asked for; then either the fast path, the asked phone's quota reserved
and the message enqueued in one script, or the reroute, another phone drawn by remaining quota. Either way
the message's job id derives from the router job's id, so a retried router job enqueues nothing twice and
keeps the phone its first try reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from loguru import logger

from src import results
from src.contracts import MessageType, RouterJobData
from src.db import queries
from src.domain.allocation import AllocationReason, allocate, is_available
from src.domain.quota import quota_date
from src.errors import NotFound, TenantMismatch
from src.jobs.base import JobInfo, job
from src.names import SEND_WHATSAPP_FOLLOWUP, SEND_WHATSAPP_INITIAL, Function, routed_job_id, whatsapp_queue
from src.redis_io.job_writer import OutgoingJob
from src.redis_io.quota_ledger import PhoneLimit, ReservationRequest
from src.results import Wire
from src.runtime.deps import Deps


@dataclass(frozen=True, slots=True)
class Message:
    """The caller's message for one lead, as the job `job_id` on the queue of whichever phone sends it."""

    data: RouterJobData
    job_id: str
    now: datetime
    today: date
    wall_ms: int  # arq's enqueue time of the job

    def on(self, phone_id: UUID, queue_slot: str) -> OutgoingJob:
        data = self.data
        payload = {
            **data.payload,
            "tenantId": str(data.tenant_id),
            "leadId": str(data.lead_id),
            "phoneId": str(phone_id),
        }
        if data.correlation_id:
            payload["correlationId"] = data.correlation_id
        followup = data.message_type is MessageType.FOLLOWUP
        queue = whatsapp_queue(queue_slot, followup=followup)
        function = SEND_WHATSAPP_FOLLOWUP if followup else SEND_WHATSAPP_INITIAL
        return OutgoingJob(self.job_id, queue, function, payload)


@dataclass(frozen=True, slots=True)
class Delivered:
    phone_id: UUID
    queue: str
    written: bool  # False: the job was already there (a retried router job)


@dataclass(frozen=True, slots=True)
class NotSent:
    reason: str
    phone_id: UUID | None = None


@job(Function.ROUTE, RouterJobData)
async def route(deps: Deps, data: RouterJobData, info: JobInfo) -> Wire:
    lead = await _load(deps, data)
    if lead.whatsapp_opted_out:
        return results.not_routed(
            "WHATSAPP_OPTED_OUT: the lead opted out of WhatsApp", phone_id=data.phone_id
        )
    assert lead.phone is not None
    now = deps.clock()
    message = Message(
        data=data,
        job_id=routed_job_id(info.job_id),
        now=now,
        today=quota_date(now, lead.tenant_timezone),
        wall_ms=deps.clock.wall_ms(now),
    )
    rerouted_from = None if is_available(lead.phone, data.tenant_id) else data.phone_id
    if rerouted_from is None:
        outcome = await _on_its_phone(deps, message, lead, lead.phone)
    else:
        outcome = await _reroute(deps, message, lead)
    if isinstance(outcome, NotSent):
        return results.not_routed(outcome.reason, phone_id=outcome.phone_id, rerouted_from=rerouted_from)

    reason = "REROUTED_PHONE_UNAVAILABLE" if rerouted_from else "ROUTED"
    if not outcome.written:
        reason = "ALREADY_ROUTED: the target job exists (a retried router job)"
    logger.debug("lead {} -> {} as {} ({})", data.lead_id, outcome.queue, message.job_id, reason)
    return results.routed(
        queue=outcome.queue,
        job_id=message.job_id,
        phone_id=outcome.phone_id,
        rerouted_from=rerouted_from,
        enqueued=outcome.written,
        reason=reason,
    )


async def _load(deps: Deps, data: RouterJobData) -> queries.RouteContext:
    """The lead and the phone asked for, both the tenant's: NotFound or TenantMismatch otherwise."""
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
    return found


async def _on_its_phone(
    deps: Deps, message: Message, lead: queries.RouteContext, phone: queries.PhoneRow
) -> Delivered | NotSent:
    """The usual case, in one round trip: the asked phone's quota reserved and the message enqueued, or
    nothing. Only that phone's counter is read."""
    data = message.data
    reservation, written = await deps.quota.reserve_and_enqueue(
        tenant_id=data.tenant_id,
        quota_date=message.today,
        phone=PhoneLimit(phone.id, phone.daily_limit),
        available=lead.available_ids,
        job=message.on(phone.id, phone.queue_slot),
        now_ms=message.wall_ms,
    )
    if reservation.phone_id is None:
        return NotSent(
            f"QUOTA_EXHAUSTED: phone {data.phone_id} has no WhatsApp quota left on {message.today}",
            phone_id=data.phone_id,
        )
    if written is None:
        # An earlier try of this job reserved another phone (it rerouted); the message goes there.
        async with deps.pg.acquire() as conn:
            rows = await queries.available_phones(conn, tenant_id=data.tenant_id)
        slot = next(row.queue_slot for row in rows if row.id == reservation.phone_id)
        return await _enqueue(deps, message, reservation.phone_id, slot)
    return Delivered(phone.id, message.on(phone.id, phone.queue_slot).queue, written)


async def _reroute(deps: Deps, message: Message, lead: queries.RouteContext) -> Delivered | NotSent:
    """The asked phone is down: another available phone with quota left, which also becomes the lead's
    sticky phone when the down one was."""
    data = message.data
    async with deps.pg.acquire() as conn:
        rows = await queries.available_phones(conn, tenant_id=data.tenant_id)
    target = await _another_phone(deps, message, rows)
    if target is None:
        return NotSent(
            f"{AllocationReason.NO_PHONE_WITH_QUOTA}: phone {data.phone_id} is down, none has quota"
        )
    [reservation], _ = await deps.quota.reserve(
        tenant_id=data.tenant_id,
        quota_date=message.today,
        phones=[PhoneLimit(row.id, row.daily_limit) for row in rows],
        requests=[ReservationRequest(message.job_id, target, fall_through=True)],
    )
    if reservation.phone_id is None:
        return NotSent(
            f"QUOTA_EXHAUSTED: phone {data.phone_id} has no WhatsApp quota left on {message.today}",
            phone_id=data.phone_id,
        )
    if lead.assigned_phone_id == data.phone_id:
        async with deps.pg.acquire() as conn:
            await queries.set_sticky_phone(
                conn,
                tenant_id=data.tenant_id,
                lead_id=data.lead_id,
                phone_id=reservation.phone_id,
                expected=data.phone_id,
                now=message.now,
            )
    slot = next(row.queue_slot for row in rows if row.id == reservation.phone_id)
    return await _enqueue(deps, message, reservation.phone_id, slot)


async def _another_phone(deps: Deps, message: Message, rows: list[queries.PhoneRow]) -> UUID | None:
    """The phone an earlier try of this router job reserved, while it is available; else one drawn by
    remaining quota today; None when no available phone has room."""
    data = message.data
    earlier = await deps.quota.reserved(
        tenant_id=data.tenant_id, quota_date=message.today, job_ids=[message.job_id]
    )
    if earlier.get(message.job_id) in {row.id for row in rows}:
        return earlier[message.job_id]
    used = await deps.quota.used([row.id for row in rows], message.today)
    allocation = allocate(
        tenant_id=data.tenant_id,
        sticky_phone_id=data.phone_id,
        phones=[row.state(used[row.id]) for row in rows],
        prefer_existing=False,
        rng=deps.rng,
    )
    return allocation.phone_id


async def _enqueue(deps: Deps, message: Message, phone_id: UUID, queue_slot: str) -> Delivered:
    """The message on the queue of `phone_id`, whose quota this job id already holds."""
    job = message.on(phone_id, queue_slot)
    [written] = await deps.job_writer.enqueue([job], now_ms=message.wall_ms)
    return Delivered(phone_id, job.queue, written)
