"""dispatch: pick a tenant's due leads and send each to its channel, exactly once per step and day.

Order of the writes, and why no lead is lost or doubled when a worker dies at any instant:

1. Reserve quota in Redis for every WhatsApp job id (idempotent per job id). Dying here leaves the leads
   due and unlocked; the rerun derives the same job ids and finds the same reservations.
2. In one transaction: update the journeys (sticky phone, last dispatch, next action moved forward) and
   write the batch's jobs into one dispatch_outbox row; commit. Dying before the commit rolls back both.
3. Enqueue the batch (idempotent by job id) and delete its row. Dying before the delete leaves the row,
   which the next dispatch relays; a relayed job that already exists is not written again.

So a lead is either still due, or marked with its job in the outbox or in its queue; and a job exists only
for a lead whose dispatch committed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from loguru import logger

from src.contracts import ALL_TENANTS, Channel, DispatchJobData
from src.db import queries
from src.domain import dispatch_report as report
from src.domain.allocation import BatchAllocator, is_available
from src.domain.dispatch import (
    Decision,
    Outcome,
    job_id_for,
    lead_job_id,
    next_actions,
    output_for,
    plan_batch,
    settle_reservations,
)
from src.domain.quota import quota_date
from src.domain.windows import SendingWindow, cron_tick_floor, next_cron_tick, next_dispatch_at
from src.errors import ConfigurationError, NotFound
from src.jobs.base import JobInfo, job
from src.jobs.dispatch.outbox import publish, relay_orphans
from src.names import Function, Queue, cron_tick_label, tenant_dispatch_job_id
from src.redis_io.codec import dumps
from src.redis_io.job_writer import OutgoingJob, arq_job_bytes_from_json, encode_batch
from src.redis_io.quota_ledger import PhoneLimit, ReservationRequest
from src.runtime import chaos, metrics
from src.runtime.deps import Deps

T = TypeVar("T")
R = TypeVar("R")
Wire = dict[str, Any]


@job(Function.DISPATCH, DispatchJobData)
async def dispatch(deps: Deps, data: DispatchJobData, info: JobInfo) -> Wire:
    if data.tenant_id == ALL_TENANTS:
        return await fan_out(deps, data, tick=info.job_id)
    return await dispatch_tenant(deps, data, dispatch_job_id=info.job_id)


async def dispatch_cron(ctx: dict[str, Any]) -> Wire:
    """The */5 cron: dispatch for every active tenant, with job ids derived from the tick."""
    scheduled = datetime.fromtimestamp(ctx["score"] / 1000, UTC)
    tick = cron_tick_label(cron_tick_floor(scheduled))
    data = DispatchJobData(correlation_id=f"cron-{tick}", tenant_id=ALL_TENANTS)
    return await fan_out(ctx["deps"], data, tick=tick)


async def fan_out(deps: Deps, data: DispatchJobData, *, tick: str) -> Wire:
    """One dispatch job per ACTIVE tenant, id `dispatch:{tenant}:{tick}`: a tick runs once per tenant."""
    started = time.perf_counter()
    now = deps.clock()
    async with deps.pg.acquire() as conn:
        tenants = await queries.active_tenants(conn)
    if data.dry_run:
        plans = [
            await dispatch_tenant(deps, data.model_copy(update={"tenant_id": t.id}), dispatch_job_id=tick)
            for t in tenants
        ]
        return _done(report.summed_plans(plans, next_dispatch_at=next_cron_tick(now)), started)

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
    written = await deps.outbound.enqueue(jobs, now_ms=deps.clock.wall_ms(now))
    logger.info("fan-out {}: {} tenants, {} new dispatch jobs", tick, len(tenants), sum(written))
    tenant_jobs = [(t.id, j.job_id, w) for t, j, w in zip(tenants, jobs, written, strict=True)]
    return _done(
        report.fan_out_result(tenant_jobs, relayed=relayed, next_dispatch_at=next_cron_tick(now)), started
    )


async def dispatch_tenant(deps: Deps, data: DispatchJobData, *, dispatch_job_id: str) -> Wire:
    started = time.perf_counter()
    now = deps.clock()
    assert isinstance(data.tenant_id, UUID)
    tenant_id = data.tenant_id
    relayed = 0 if data.dry_run else await relay_orphans(deps, tenant_id=tenant_id)
    async with deps.pg.acquire() as conn:
        tenant = await queries.load_tenant(conn, tenant_id=tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found")
        try:
            window = tenant.window()
        except ValueError as exc:
            raise ConfigurationError(f"tenant {tenant_id} has an unusable sending window: {exc}") from None
        result = report.base_result(
            tenant_id=str(tenant_id),
            dry_run=data.dry_run,
            relayed=relayed,
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
            return _done(result, started)
        if not window.is_open(now):
            waiting = await queries.due_leads(conn, lock=False, **selection)
            logger.info(
                "outside the sending window: {} due leads wait until {}",
                len(waiting),
                result["nextDispatchAt"],
            )
            if not data.dry_run:
                metrics.count_leads("SKIPPED_OUTSIDE_HOURS", "OUTSIDE_SENDING_WINDOW", len(waiting))
            result |= {"skippedOutsideHours": len(waiting), "outsideSendingWindow": True}
            return _done(result, started)

        # The selected rows stay locked until the commit, so a concurrent dispatch of the tenant skips them.
        transaction: AbstractAsyncContextManager[Any] = nullcontext() if data.dry_run else conn.transaction()
        async with transaction:
            leads = await queries.due_leads(conn, lock=not data.dry_run, **selection)
            held = await queries.count_due_held_for_review(
                conn,
                tenant_id=tenant_id,
                now=now,
                priority=data.priority_filter,
                sequence_id=data.sequence_filter,
            )
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
            if data.dry_run:
                explained = report.explain(decisions, job_ids, slots)
                return _done(
                    report.batch_result(result, decisions, explained, written={}, held_for_review=held),
                    started,
                )

            decisions = await _reserve(deps, tenant_id, today, phone_rows, decisions, job_ids)
            await chaos.pause(deps.settings, "after_reserve")
            outbox_id, batch = await _persist(
                conn, deps, data, window, now, decisions, job_ids, slots, dispatch_job_id
            )

        await chaos.pause(deps.settings, "after_commit")
        published, explained = await _alongside(
            publish(deps, conn, outbox_id, batch) if batch else _nothing(),
            lambda: report.explain(decisions, job_ids, slots),
        )
    written = dict(zip((j["jobId"] for j in explained[1]), published or (), strict=False))
    _count(decisions, held)
    result = _done(
        report.batch_result(result, decisions, explained, written=written, held_for_review=held), started
    )
    logger.info(
        "dispatched {} leads: {} WhatsApp, {} e-mail, {} waiting for quota, {} without channel",
        result["totalEligibleLeads"],
        result["dispatchedToWhatsApp"],
        result["dispatchedToEmail"],
        result["skippedQuotaExceeded"],
        result["skippedNoChannel"],
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
    conn: asyncpg.Connection,
    deps: Deps,
    data: DispatchJobData,
    window: SendingWindow,
    now: datetime,
    decisions: list[Decision],
    job_ids: dict[UUID, str],
    slots: dict[UUID, str],
    dispatch_job_id: str,
) -> tuple[int, bytes]:
    """Update the journeys and write the batch's jobs into one outbox row, in the caller's transaction;
    returns the row's id and the batch as the enqueue script takes it (empty when nothing goes out)."""
    assert isinstance(data.tenant_id, UUID)
    tenant_id = data.tenant_id
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
    now_ms = deps.clock.wall_ms(now)

    def encode() -> tuple[int, bytes]:
        jobs = []
        for d in decisions:
            if d.outcome is Outcome.DISPATCHED:
                queue, function, payload = output_for(
                    d,
                    tenant_id=tenant_id,
                    correlation_id=data.correlation_id,
                    dispatch_job_id=dispatch_job_id,
                    queue_slots=slots,
                )
                jobs.append(
                    (
                        job_ids[d.lead.journey_id],
                        queue,
                        arq_job_bytes_from_json(function, dumps(payload), now_ms),
                    )
                )
        return len(jobs), encode_batch(jobs) if jobs else b""

    _, (count, batch) = await _alongside(
        queries.update_journeys(conn, tenant_id=tenant_id, now=now, updates=updates), encode
    )
    if not count:
        return 0, b""
    outbox_id = await queries.insert_outbox(
        conn, tenant_id=tenant_id, dispatch_job_id=dispatch_job_id, job_count=count, jobs=batch
    )
    return outbox_id, batch


def _count(decisions: list[Decision], held: int) -> None:
    counted = Counter(
        (d.outcome.value, d.channel.value if d.channel else None, str(d.reason)) for d in decisions
    )
    for (outcome, channel, reason), amount in counted.items():
        metrics.count_lead(outcome, channel, reason, amount)
    metrics.count_leads("SKIPPED_HUMAN_REVIEW", "REQUIRES_HUMAN_REVIEW", held)


async def _nothing() -> None:
    return None


async def _alongside(io: Awaitable[T], work: Callable[[], R]) -> tuple[T, R]:
    """Run `work` (CPU) while `io` waits for its server: `io` is started first and always awaited, also
    when `work` fails, so a connection is never left with a statement in flight."""
    pending = asyncio.ensure_future(io)
    try:
        await asyncio.sleep(0)  # lets `io` send its statement; a cancellation here still awaits it
        done = work()
    except BaseException:
        await asyncio.gather(pending, return_exceptions=True)
        raise
    return await pending, done


def _done(result: Wire, started: float) -> Wire:
    result["processingTimeMs"] = round((time.perf_counter() - started) * 1000)
    return result
