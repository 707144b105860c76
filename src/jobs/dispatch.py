"""dispatch: pick a tenant's due leads and send each to its channel, exactly once per step and day.

Order of the writes, and why no lead is lost or doubled when a worker dies at any instant:

1. Reserve quota in Redis for every WhatsApp job id (idempotent per job id). Dying here leaves the leads
   due and unlocked; the rerun derives the same job ids and finds the same reservations.
2. In one transaction: update the journeys (sticky phone, last dispatch, next action moved forward) and
   insert the jobs into dispatch_outbox; commit. Dying before the commit rolls back both.
3. Enqueue the outbox rows (idempotent by job id) and delete them. Dying before the delete leaves rows
   that the next dispatch relays; a relayed job that already exists is not written again.

So a lead is either still due, or marked with its job in the outbox or in its queue; and a job exists only
for a lead whose dispatch committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection

from src import chaos, metrics
from src.contracts import (
    ALL_TENANTS,
    Channel,
    DispatchJobData,
    DispatchResult,
    JobCreated,
    LeadDecision,
    TenantJob,
)
from src.db import queries
from src.deps import Deps
from src.domain.allocation import BatchAllocator, is_available
from src.domain.dispatch import (
    Decision,
    Outcome,
    job_id_for,
    lead_job_id,
    next_actions,
    output_for,
    plan_batch,
    queue_of,
    settle_reservations,
)
from src.domain.quota import quota_date
from src.domain.windows import SendingWindow, cron_tick_floor, next_cron_tick, next_dispatch_at
from src.errors import ConfigurationError, NotFound
from src.jobs.base import JobInfo, job
from src.jobs.outbox import publish, relay_orphans
from src.names import Function, Queue, cron_tick_label, tenant_dispatch_job_id
from src.outbound import EncodedJob, OutgoingJob
from src.quota import PhoneLimit, ReservationRequest
from src.serialization import dumps

T = TypeVar("T")
R = TypeVar("R")


@job(Function.DISPATCH, DispatchJobData)
async def dispatch(deps: Deps, data: DispatchJobData, info: JobInfo) -> DispatchResult:
    if data.tenant_id == ALL_TENANTS:
        return await fan_out(deps, data, tick=info.job_id)
    return await dispatch_tenant(deps, data, dispatch_job_id=info.job_id)


async def dispatch_cron(ctx: dict[str, Any]) -> dict[str, Any]:
    """The */5 cron: dispatch for every active tenant, with job ids derived from the tick."""
    scheduled = datetime.fromtimestamp(ctx["score"] / 1000, UTC)
    tick = cron_tick_label(cron_tick_floor(scheduled))
    data = DispatchJobData(correlation_id=f"cron-{tick}", tenant_id=ALL_TENANTS)
    result = await fan_out(ctx["deps"], data, tick=tick)
    return result.model_dump(mode="json", by_alias=True)


async def fan_out(deps: Deps, data: DispatchJobData, *, tick: str) -> DispatchResult:
    """One dispatch job per ACTIVE tenant, id `dispatch:{tenant}:{tick}`: a tick runs once per tenant."""
    started = time.perf_counter()
    now = deps.clock()
    async with deps.engine.connect() as conn:
        tenants = await queries.active_tenants(conn)
    if data.dry_run:
        plans = [
            await dispatch_tenant(deps, data.model_copy(update={"tenant_id": t.id}), dispatch_job_id=tick)
            for t in tenants
        ]
        return _sum_plans(plans, next_cron_tick(now), started)

    relayed = await relay_orphans(deps, tenant_id=None)
    jobs = [
        OutgoingJob(
            tenant_dispatch_job_id(t.id, tick),
            Queue.DISPATCH,
            Function.DISPATCH,
            data.model_copy(update={"tenant_id": t.id}).model_dump(mode="json", by_alias=True),
        )
        for t in tenants
    ]
    written = await deps.outbound.enqueue(jobs, now_ms=_ms(now))
    logger.info("fan-out {}: {} tenants, {} new dispatch jobs", tick, len(tenants), sum(written))
    return DispatchResult(
        tenant_id=ALL_TENANTS,
        dry_run=False,
        tenant_jobs=[
            TenantJob(tenant_id=t.id, job_id=j.job_id, enqueued=w)
            for t, j, w in zip(tenants, jobs, written, strict=True)
        ],
        relayed_from_outbox=relayed,
        next_dispatch_at=next_cron_tick(now),
        processing_time_ms=_elapsed_ms(started),
    )


async def dispatch_tenant(deps: Deps, data: DispatchJobData, *, dispatch_job_id: str) -> DispatchResult:
    started = time.perf_counter()
    now = deps.clock()
    assert isinstance(data.tenant_id, UUID)
    tenant_id = data.tenant_id
    relayed = 0 if data.dry_run else await relay_orphans(deps, tenant_id=tenant_id)
    async with deps.engine.connect() as conn:
        tenant = await queries.load_tenant(conn, tenant_id=tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found")
        try:
            window = tenant.window()
        except ValueError as exc:
            raise ConfigurationError(f"tenant {tenant_id} has an unusable sending window: {exc}") from None
        base = DispatchResult(
            tenant_id=str(tenant_id),
            dry_run=data.dry_run,
            relayed_from_outbox=relayed,
            next_dispatch_at=next_dispatch_at(window, now),
        )
        selection: dict[str, Any] = {
            "tenant_id": tenant_id,
            "now": now,
            "limit": data.batch_size,
            "priority": data.priority_filter,
            "sequence_id": data.sequence_filter,
        }
        if tenant.status != "ACTIVE":
            logger.info("tenant {} is {}: nothing dispatched", tenant_id, tenant.status)
            return base.model_copy(update={"processing_time_ms": _elapsed_ms(started)})
        if not window.is_open(now):
            waiting = await queries.due_leads(conn, lock=False, **selection)
            logger.info(
                "outside the sending window: {} due leads wait until {}", len(waiting), base.next_dispatch_at
            )
            if not data.dry_run:
                metrics.count_leads("SKIPPED_OUTSIDE_HOURS", "OUTSIDE_SENDING_WINDOW", len(waiting))
            return base.model_copy(
                update={
                    "skipped_outside_hours": len(waiting),
                    "outside_sending_window": True,
                    "processing_time_ms": _elapsed_ms(started),
                }
            )

        leads = await queries.due_leads(conn, lock=not data.dry_run, **selection)
        held = await queries.count_due_held_for_review(
            conn,
            tenant_id=tenant_id,
            now=now,
            priority=data.priority_filter,
            sequence_id=data.sequence_filter,
        )
        if not data.dry_run:
            metrics.count_leads("SKIPPED_HUMAN_REVIEW", "REQUIRES_HUMAN_REVIEW", held)
        phone_rows = await queries.tenant_phones(conn, tenant_id=tenant_id)
        today = quota_date(now, tenant.timezone)
        used = await deps.quota.used([p.id for p in phone_rows], today)
        whatsapp_ids = {lead.journey_id: lead_job_id(lead, True, tenant_id, today) for lead in leads}
        earlier = await _earlier_reservations(deps, tenant_id, today, whatsapp_ids)
        allocator = BatchAllocator(tenant_id, [p.state(used[p.id]) for p in phone_rows])
        decisions = plan_batch(
            leads, preference=data.channel_preference, allocator=allocator, reserved=earlier
        )
        job_ids = {
            d.lead.journey_id: whatsapp_ids[d.lead.journey_id]
            if d.channel is Channel.WHATSAPP
            else job_id_for(d, tenant_id, today)
            for d in decisions
        }
        slots = {p.id: p.queue_slot for p in phone_rows}

        written: dict[str, bool] = {}
        if not data.dry_run:
            decisions = await _reserve(deps, tenant_id, today, phone_rows, decisions, job_ids)
            await chaos.pause(deps.settings, "after_reserve")
            outbox_ids, outgoing = await _persist(
                conn, deps, data, tenant_id, window, now, decisions, job_ids, slots, dispatch_job_id
            )
            await conn.commit()
    if not data.dry_run:
        await chaos.pause(deps.settings, "after_commit")
        written, explained = await _alongside(
            publish(deps, outbox_ids, outgoing), lambda: _explain(decisions, job_ids, slots)
        )
    else:
        explained = _explain(decisions, job_ids, slots)

    result = _result(base, data, decisions, explained, written, held, len(leads), started)
    logger.info(
        "dispatched {} leads: {} WhatsApp, {} e-mail, {} waiting for quota, {} without channel{}",
        result.total_eligible_leads,
        result.dispatched_to_whatsapp,
        result.dispatched_to_email,
        result.skipped_quota_exceeded,
        result.skipped_no_channel,
        " (dry run)" if data.dry_run else "",
    )
    return result


async def _earlier_reservations(
    deps: Deps, tenant_id: UUID, today: date, whatsapp_ids: dict[UUID, str]
) -> dict[UUID, UUID]:
    """Quota an earlier try of this batch reserved before it died: already in the counters, so the plan
    keeps those phones instead of counting the same sends twice. `whatsapp_ids`: journey -> the job id
    of its WhatsApp message today."""
    journeys = {job_id: journey for journey, job_id in whatsapp_ids.items()}
    found = await deps.quota.reserved(tenant_id=tenant_id, quota_date=today, job_ids=list(journeys))
    return {journeys[job_id]: phone for job_id, phone in found.items()}


async def _reserve(
    deps: Deps,
    tenant_id: UUID,
    today: date,
    phone_rows: list[queries.PhoneRow],
    decisions: list[Decision],
    job_ids: dict[UUID, str],
) -> list[Decision]:
    whatsapp = [d for d in decisions if d.is_whatsapp]
    if not whatsapp:
        return decisions
    available = [PhoneLimit(p.id, p.daily_limit) for p in phone_rows if is_available(p.state(0), tenant_id)]
    requests = [
        ReservationRequest(
            job_ids[d.lead.journey_id], d.phone_id, fall_through=d.lead.sticky_phone_id != d.phone_id
        )
        for d in whatsapp
        if d.phone_id is not None
    ]
    reservations, counters = await deps.quota.reserve(
        tenant_id=tenant_id, quota_date=today, phones=available, requests=requests
    )
    for phone in phone_rows:
        if phone.id in counters:
            metrics.set_quota(str(phone.id), str(tenant_id), counters[phone.id], phone.daily_limit)
    by_job = {r.job_id: r.phone_id for r in reservations}
    return settle_reservations(
        decisions, {d.lead.journey_id: by_job[job_ids[d.lead.journey_id]] for d in whatsapp}
    )


async def _persist(
    conn: AsyncConnection,
    deps: Deps,
    data: DispatchJobData,
    tenant_id: UUID,
    window: SendingWindow,
    now: datetime,
    decisions: list[Decision],
    job_ids: dict[UUID, str],
    slots: dict[UUID, str],
    dispatch_job_id: str,
) -> tuple[list[int], dict[str, EncodedJob]]:
    """Update the journeys and write the outbox; returns the outbox ids and their jobs, serialized once
    for both the outbox row and the enqueue."""
    settings = deps.settings
    after = next_actions(
        now=now,
        window=window,
        redispatch_after=timedelta(seconds=settings.redispatch_after_s),
        no_channel_recheck=timedelta(seconds=settings.no_channel_recheck_s),
    )
    updates = [
        queries.JourneyUpdate(
            journey_id=d.lead.journey_id,
            phone_id=d.phone_id if d.is_whatsapp else None,
            channel=d.channel.value if d.outcome is Outcome.DISPATCHED and d.channel else None,
            next_action_at=after[d.outcome],
        )
        for d in decisions
    ]

    def outbox() -> tuple[list[queries.OutboxEntry], dict[str, EncodedJob]]:
        entries = []
        jobs: dict[str, EncodedJob] = {}
        for d in decisions:
            if d.outcome is not Outcome.DISPATCHED:
                continue
            queue, function, payload = output_for(
                d,
                tenant_id=tenant_id,
                correlation_id=data.correlation_id,
                dispatch_job_id=dispatch_job_id,
                queue_slots=slots,
            )
            job_id = job_ids[d.lead.journey_id]
            payload_json = dumps(payload)
            jobs[job_id] = EncodedJob(job_id, queue, function, payload_json)
            entries.append(
                queries.OutboxEntry(d.lead.lead_id, job_id, queue, function, payload_json.decode())
            )
        return entries, jobs

    _, (entries, jobs) = await _alongside(
        queries.update_journeys(conn, tenant_id=tenant_id, now=now, updates=updates), outbox
    )
    return await queries.insert_outbox(conn, tenant_id=tenant_id, entries=entries), jobs


async def _alongside(io: Awaitable[T], work: Callable[[], R]) -> tuple[T, R]:
    """Run `work` (CPU) while `io` waits for its server: `io` is started first and always awaited, also
    when `work` fails, so a connection is never left with a statement in flight."""
    pending = asyncio.ensure_future(io)
    await asyncio.sleep(0)
    try:
        done = work()
    except BaseException:
        await asyncio.gather(pending, return_exceptions=True)
        raise
    return await pending, done


def _explain(
    decisions: list[Decision], job_ids: dict[UUID, str], slots: dict[UUID, str]
) -> tuple[list[LeadDecision], list[JobCreated]]:
    """Each lead's decision, and the job of each dispatched lead, for the result (built while the jobs
    are being enqueued: only the duplicates among them depend on the enqueue)."""
    lead_decisions: list[LeadDecision] = []
    jobs: list[JobCreated] = []
    for d in decisions:
        job_id = job_ids[d.lead.journey_id] if d.outcome is Outcome.DISPATCHED else None
        lead_decisions.append(
            LeadDecision(
                lead_id=d.lead.lead_id,
                outcome=d.outcome.value,
                channel=d.channel,
                phone_id=d.phone_id,
                reason=d.reason,
                job_id=job_id,
            )
        )
        if job_id is None or d.channel is None:
            continue
        jobs.append(
            JobCreated(
                job_id=job_id,
                lead_id=d.lead.lead_id,
                channel=d.channel,
                queue=queue_of(d, slots),
                phone_id=d.phone_id,
            )
        )
    return lead_decisions, jobs


def _result(
    base: DispatchResult,
    data: DispatchJobData,
    decisions: list[Decision],
    explained: tuple[list[LeadDecision], list[JobCreated]],
    written: dict[str, bool],
    held: int,
    selected: int,
    started: float,
) -> DispatchResult:
    lead_decisions, jobs = explained
    if not data.dry_run:
        for d in decisions:
            metrics.count_lead(d.outcome.value, d.channel.value if d.channel else None, d.reason)
    created = [job for job in jobs if written.get(job.job_id) is not False]
    dispatched = [d for d in decisions if d.outcome is Outcome.DISPATCHED]
    return base.model_copy(
        update={
            "total_eligible_leads": selected,
            "dispatched_to_whatsapp": sum(d.channel is Channel.WHATSAPP for d in dispatched),
            "dispatched_to_email": sum(d.channel is not Channel.WHATSAPP for d in dispatched),
            "skipped_quota_exceeded": sum(d.outcome is Outcome.SKIPPED_QUOTA for d in decisions),
            "skipped_no_channel": sum(d.outcome is Outcome.SKIPPED_NO_CHANNEL for d in decisions),
            "skipped_human_review": held,
            "jobs_created": created,
            "duplicate_jobs_skipped": len(jobs) - len(created),
            "decisions": lead_decisions,
            "processing_time_ms": _elapsed_ms(started),
        }
    )


def _sum_plans(plans: list[DispatchResult], next_at: datetime, started: float) -> DispatchResult:
    counters = (
        "total_eligible_leads",
        "dispatched_to_whatsapp",
        "dispatched_to_email",
        "skipped_quota_exceeded",
        "skipped_outside_hours",
        "skipped_no_channel",
        "skipped_human_review",
    )
    totals: dict[str, Any] = {name: sum(getattr(plan, name) for plan in plans) for name in counters}
    summary = DispatchResult(
        tenant_id=ALL_TENANTS, dry_run=True, tenant_plans=plans, next_dispatch_at=next_at
    )
    return summary.model_copy(update={**totals, "processing_time_ms": _elapsed_ms(started)})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
