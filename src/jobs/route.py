"""route: one message to its phone's queue, rerouted when the phone is no longer available.

Steps: load the lead, its tenant (the caller's, or the lead's own when the caller names none) and the
phone asked for, which must be that tenant's; refuse a lead that may get no message; time the message
(now, or the sending window's next opening); reserve, on the asked phone or, when it is down, on another
drawn by remaining quota, its quota, its pacing slot from then on (now with sendNow) and its room in the
portfolio budget (src/redis_io/quota_ledger.py); enqueue it at that slot, whose time its payload says;
last, the message's evidence row (outreach_messages). Either way the message's job id derives from the
router job's id, so a retried router job enqueues nothing twice and keeps the phone and the slot its first
try reserved.

The evidence row is written after the enqueue, not in one transaction with it (Redis is not PostgreSQL):
so a row never exists for a message that is not on a queue, and a router job killed between the two
leaves its message without a row only until arq runs it again, when it finds its job there
(ALREADY_ROUTED) and writes the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from loguru import logger

from src import results
from src.contracts import Channel, MessageType, RouterJobData, check_payload_size
from src.db import queries
from src.domain.allocation import AllocationReason, allocate, is_available
from src.domain.lawful import Basis
from src.domain.lead_gate import LeadStanding, Refusal, SendTime, refusal_reason, send_time, whatsapp_refusal
from src.domain.senders import Pace, Shortfall, slot_bounds
from src.domain.windows import SendingWindow
from src.errors import ConfigurationError, NotFound, TenantMismatch
from src.jobs.base import JobInfo, job
from src.jobs.tenant import sending_window
from src.names import SEND_WHATSAPP_FOLLOWUP, SEND_WHATSAPP_INITIAL, Function, routed_job_id, whatsapp_queue
from src.redis_io.job_writer import OutgoingJob, SlottedJob, slotted_job
from src.redis_io.quota_ledger import Frame, PhoneLimit, Reservation, ReservationRequest
from src.redis_io.withdraw import Waiting, withdraw
from src.results import Wire
from src.runtime.clock import epoch_ms, epoch_us
from src.runtime.deps import Deps
from src.runtime.log import enrich_job


@dataclass(frozen=True, slots=True)
class Message:
    """The caller's message for one lead of `tenant_id`, as the job `job_id` on the queue of whichever
    phone sends it, at the first slot of that phone's pace from `timing.at` on (at once with sendNow)."""

    data: RouterJobData
    tenant_id: UUID
    job_id: str
    now: datetime
    timing: SendTime
    wall_ms: int  # arq's enqueue time of the job
    basis: Basis  # the lead's WhatsApp basis, which the message goes out on
    frame: Frame  # where its slot may fall, and the tenant's portfolio budget
    pace: Pace
    recipient: str | None  # the lead's number (E.164), counted in the portfolio budget

    @property
    def today(self) -> date:
        """The tenant-local date whose quota the message counts against: the day it goes out."""
        return self.timing.quota_day

    @property
    def ahead_s(self) -> int:
        return (self.frame.opens_ms - self.frame.now_ms) // 1000

    def request(
        self, phone_id: UUID, *, fall_through: bool, report_elsewhere: bool = False
    ) -> ReservationRequest:
        gap_ms = self.pace.gap_ms(self.job_id)
        return ReservationRequest(
            self.job_id,
            phone_id,
            fall_through,
            self.recipient,
            gap_ms,
            send_now=self.data.send_now,
            report_elsewhere=report_elsewhere,
        )

    async def reserve(self, deps: Deps, phones: list[PhoneLimit], request: ReservationRequest) -> Reservation:
        [reservation], _ = await deps.quota.reserve(
            tenant_id=self.tenant_id,
            quota_date=self.today,
            phones=phones,
            requests=[request],
            frame=self.frame,
            ahead_s=self.ahead_s,
        )
        return reservation

    async def reserve_and_enqueue(
        self, deps: Deps, phone: PhoneLimit, request: ReservationRequest, job: SlottedJob
    ) -> tuple[Reservation, bool | None]:
        """`reserve` on one phone, and `job` enqueued at its slot (QuotaLedger.reserve_and_enqueue)."""
        return await deps.quota.reserve_and_enqueue(
            tenant_id=self.tenant_id,
            quota_date=self.today,
            phone=phone,
            request=request,
            frame=self.frame,
            ahead_s=self.ahead_s,
            job=job,
        )

    def at(self, slot_ms: int) -> datetime:
        return self.now + timedelta(milliseconds=slot_ms - self.frame.now_ms)

    def on(self, phone_id: UUID, queue_slot: str, slot_ms: int) -> OutgoingJob:
        """The job on the queue of `phone_id`, due at `slot_ms` (arq's score, on the host's clock)."""
        queue, function, payload = self._job(phone_id, queue_slot)
        payload["scheduledAt"] = results.instant(self.at(slot_ms))
        due_ms = self.wall_ms + slot_ms - self.frame.now_ms
        return OutgoingJob(self.job_id, queue, function, payload, due_ms)

    def slotted(self, phone_id: UUID, queue_slot: str) -> SlottedJob | None:
        """The job `on` would write, for the reservation script to write at the slot it reserves."""
        queue, function, payload = self._job(phone_id, queue_slot)
        now_us = epoch_us(self.now)
        return slotted_job(self.job_id, queue, function, payload, now_us=now_us, enqueue_ms=self.wall_ms)

    def _job(self, phone_id: UUID, queue_slot: str) -> tuple[str, str, dict[str, Any]]:
        """The message's queue, function and payload, all but the payload's scheduledAt."""
        data = self.data
        payload = {
            **data.payload,
            "tenantId": str(self.tenant_id),
            "leadId": str(data.lead_id),
            "phoneId": str(phone_id),
            "lawfulBasis": self.basis.evidence(),
        }
        if data.correlation_id:
            payload["correlationId"] = data.correlation_id
        followup = data.message_type is MessageType.FOLLOWUP
        function = SEND_WHATSAPP_FOLLOWUP if followup else SEND_WHATSAPP_INITIAL
        return whatsapp_queue(queue_slot, followup=followup), function, payload


@dataclass(frozen=True, slots=True)
class Delivered:
    phone_id: UUID
    queue: str
    written: bool  # False: the job was already there (a retried router job)
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class NotSent:
    reason: str
    phone_id: UUID | None = None


@job(Function.ROUTE, RouterJobData)
async def route(deps: Deps, data: RouterJobData, info: JobInfo) -> Wire:
    check_payload_size(data.payload, limit=deps.config.max_payload_bytes)
    lead = await _load(deps, data)
    enrich_job(tenantId=str(lead.tenant.id))
    window = sending_window(lead.tenant)
    refusal = whatsapp_refusal(lead.standing)
    if refusal is not None:
        if refusal is Refusal.OBJECTED and info.job_try > 1:
            # An earlier try may have enqueued the message and died before its row: take it back.
            await withdraw(deps.redis, [Waiting(routed_job_id(info.job_id), None)])
        return results.not_routed(refusal_reason(refusal, lead.standing), phone_id=data.phone_id)
    message = _timed(deps, data, lead, window, info)
    assert lead.phone is not None
    rerouted_from = None if is_available(lead.phone, lead.tenant.id) else data.phone_id
    if rerouted_from is None:
        outcome = await _on_its_phone(deps, message, lead, lead.phone)
    else:
        outcome = await _reroute(deps, message, lead)
    if isinstance(outcome, Delivered):
        outcome = await _recorded(deps, message, outcome, lead.standing)
    return _result(message, outcome, rerouted_from)


def _timed(
    deps: Deps, data: RouterJobData, lead: queries.RouteContext, window: SendingWindow, info: JobInfo
) -> Message:
    """The message, due now while the tenant's window is open (or for a reply), else at its next opening;
    paced from then on inside that opening (src/domain/senders.py)."""
    now = deps.clock()
    timing = send_time(window, now, send_now=data.send_now)
    if timing is None:
        raise ConfigurationError(f"tenant {lead.tenant.id} has a sending window that never opens")
    bounds = None if data.send_now else slot_bounds(window, timing.at)
    opens, closes = bounds or (timing.at, timing.at + timedelta(milliseconds=1))
    frame = Frame(epoch_ms(now), epoch_ms(opens), epoch_ms(closes), lead.tenant.wa_portfolio_limit)
    return Message(
        data=data,
        tenant_id=lead.tenant.id,
        job_id=routed_job_id(info.job_id),
        now=now,
        timing=timing,
        wall_ms=deps.clock.wall_ms(now),
        basis=lead.standing.lawful.bases.whatsapp,
        frame=frame,
        pace=lead.tenant.pace(),
        recipient=lead.recipient,
    )


async def _recorded(
    deps: Deps, message: Message, delivered: Delivered, standing: LeadStanding
) -> Delivered | NotSent:
    """The message's evidence row. Should the lead have objected since it was read, no row is written and
    the message is taken back off its queue (queries.record_routed_message says why that is race-free)."""
    record = queries.MessageRecord(
        tenant_id=message.tenant_id,
        lead_id=message.data.lead_id,
        channel=Channel.WHATSAPP.value,
        phone_id=delivered.phone_id,
        queue=delivered.queue,
        job_id=message.job_id,
        basis=message.basis,
        scheduled_at=delivered.scheduled_at,
    )
    async with deps.pg.acquire() as conn:
        recorded = await queries.record_routed_message(conn, record=record)
    if recorded is not queries.Recorded.OBJECTED:
        return delivered
    await withdraw(deps.redis, [Waiting(message.job_id, delivered.queue)])
    return NotSent(refusal_reason(Refusal.OBJECTED, standing), phone_id=delivered.phone_id)


def _result(message: Message, outcome: Delivered | NotSent, rerouted_from: UUID | None) -> Wire:
    if isinstance(outcome, NotSent):
        return results.not_routed(outcome.reason, phone_id=outcome.phone_id, rerouted_from=rerouted_from)
    reason = "REROUTED_PHONE_UNAVAILABLE" if rerouted_from else "ROUTED"
    if not outcome.written:
        reason = "ALREADY_ROUTED: the target job exists (a retried router job)"
    logger.debug(
        "lead {} -> {} as {}, due {} ({})",
        message.data.lead_id,
        outcome.queue,
        message.job_id,
        outcome.scheduled_at,
        reason,
    )
    return results.routed(
        queue=outcome.queue,
        job_id=message.job_id,
        phone_id=outcome.phone_id,
        rerouted_from=rerouted_from,
        enqueued=outcome.written,
        reason=reason,
        scheduled_at=outcome.scheduled_at if outcome.scheduled_at > message.now else None,
    )


async def _load(deps: Deps, data: RouterJobData) -> queries.RouteContext:
    """The lead and the phone asked for, both of one tenant: NotFound or TenantMismatch otherwise. Without
    a tenant in the input, a phone of another tenant is refused exactly as a phone that does not exist:
    the caller learns nothing of other tenants."""
    async with deps.pg.acquire() as conn:
        found = await queries.route_context(
            conn, tenant_id=data.tenant_id, lead_id=data.lead_id, phone_id=data.phone_id
        )
        if found is None:
            scope = f" for tenant {data.tenant_id}" if data.tenant_id else ""
            raise NotFound(f"lead {data.lead_id} not found{scope}")
        if found.phone is None:
            if data.tenant_id is None:
                raise NotFound(f"phone {data.phone_id} not found for lead {data.lead_id}")
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
    """The usual case: the asked phone's quota, slot and the portfolio budget reserved, then the message
    enqueued at its slot; or nothing. Both in one script unless replicas must confirm the reservation
    before the message is on a queue (QuotaLedger.enqueues_with_reservation). Only that phone goes to the
    script (its keys and arguments are most of a route's cost at 50 phones): should an earlier try of this
    job have reserved another phone (it rerouted), the script says so, and the rare second call passes the
    tenant's available phones to find and reuse that reservation (their limits play no part: no
    fall-through)."""
    asked = PhoneLimit(phone.id, phone.limit_on(message.today))
    request = message.request(phone.id, fall_through=False, report_elsewhere=True)
    job = message.slotted(phone.id, phone.queue_slot) if deps.quota.enqueues_with_reservation else None
    if job is None:
        reservation = await message.reserve(deps, [asked], request)
    else:
        # Reserved and enqueued in one script (no replica to wait for in between); when it got no phone,
        # reserved nothing and enqueued nothing.
        reservation, written = await message.reserve_and_enqueue(deps, asked, request, job)
        if written is not None:
            assert reservation.slot_ms is not None
            return Delivered(phone.id, job.queue, written, message.at(reservation.slot_ms))
    slot = phone.queue_slot
    if reservation.elsewhere:
        async with deps.pg.acquire() as conn:
            rows = await queries.available_phones(conn, tenant_id=message.tenant_id)
        others = [PhoneLimit(row.id, 0) for row in rows if row.id != phone.id]
        reservation = await message.reserve(
            deps, [asked, *others], message.request(phone.id, fall_through=False)
        )
        slot = next((row.queue_slot for row in rows if row.id == reservation.phone_id), slot)
    if reservation.phone_id is None:
        return _not_sent(message, reservation)
    return await _enqueue(deps, message, reservation, slot)


def _not_sent(message: Message, reservation: Reservation) -> NotSent:
    """Why no phone could take the message (QUOTA_EXHAUSTED, WINDOW_FULL, PORTFOLIO_LIMIT)."""
    phone_id, day = message.data.phone_id, message.today
    if reservation.shortfall is Shortfall.PORTFOLIO_LIMIT:
        budget = message.frame.portfolio_limit
        return NotSent(
            f"PORTFOLIO_LIMIT: the tenant messaged its {budget} unique recipients of the last 24 h"
        )
    if reservation.shortfall is Shortfall.WINDOW_FULL:
        return NotSent(
            f"WINDOW_FULL: phone {phone_id} has no slot left in the sending window of {day}",
            phone_id=phone_id,
        )
    return NotSent(
        f"QUOTA_EXHAUSTED: phone {phone_id} has no WhatsApp quota left on {day}", phone_id=phone_id
    )


async def _reroute(deps: Deps, message: Message, lead: queries.RouteContext) -> Delivered | NotSent:
    """The asked phone is down: another available phone with quota left, which also becomes the lead's
    sticky phone when the down one was."""
    data = message.data
    async with deps.pg.acquire() as conn:
        rows = await queries.available_phones(conn, tenant_id=message.tenant_id)
    target = await _another_phone(deps, message, rows)
    if target is None:
        return NotSent(
            f"{AllocationReason.NO_PHONE_WITH_QUOTA}: phone {data.phone_id} is down, none has quota"
        )
    reservation = await message.reserve(
        deps,
        [PhoneLimit(row.id, row.limit_on(message.today)) for row in rows],
        message.request(target, fall_through=True),
    )
    if reservation.phone_id is None:
        return _not_sent(message, reservation)
    if lead.assigned_phone_id == data.phone_id:
        async with deps.pg.acquire() as conn:
            await queries.set_sticky_phone(
                conn,
                tenant_id=message.tenant_id,
                lead_id=data.lead_id,
                phone_id=reservation.phone_id,
                expected=data.phone_id,
                now=message.now,
            )
    slot = next(row.queue_slot for row in rows if row.id == reservation.phone_id)
    return await _enqueue(deps, message, reservation, slot)


async def _another_phone(deps: Deps, message: Message, rows: list[queries.PhoneRow]) -> UUID | None:
    """The phone an earlier try of this router job reserved, while it is available; else one drawn by
    remaining quota today; None when no available phone has room."""
    data = message.data
    earlier = await deps.quota.reserved(
        tenant_id=message.tenant_id, quota_date=message.today, job_ids=[message.job_id]
    )
    if earlier.get(message.job_id) in {row.id for row in rows}:
        return earlier[message.job_id]
    used = await deps.quota.used([row.id for row in rows], message.today)
    allocation = allocate(
        tenant_id=message.tenant_id,
        sticky_phone_id=data.phone_id,
        phones=[row.state(used[row.id], message.today) for row in rows],
        prefer_existing=False,
        rng=deps.rng,
    )
    return allocation.phone_id


async def _enqueue(deps: Deps, message: Message, reservation: Reservation, queue_slot: str) -> Delivered:
    """The message on the queue of its reserved phone, at its reserved slot."""
    assert reservation.phone_id is not None
    assert reservation.slot_ms is not None
    job = message.on(reservation.phone_id, queue_slot, reservation.slot_ms)
    [written] = await deps.job_writer.enqueue([job], now_ms=message.wall_ms)
    return Delivered(reservation.phone_id, job.queue, written, message.at(reservation.slot_ms))
