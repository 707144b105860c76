"""dispatch of one tenant: select its due leads, plan each one, reserve quota, persist, publish.

The order of the writes is why no lead is lost or doubled when a worker dies at any instant:

1. reserve: quota in Redis for every WhatsApp job id (idempotent per job id). Dying here leaves the leads
   due and unlocked; the rerun derives the same job ids and finds the same reservations.
2. persist: in one transaction, the journeys (sticky phone, last dispatch, next action moved forward) and
   the batch's jobs in one dispatch_outbox row; commit. Dying before the commit rolls back both.
3. publish: enqueue the batch (idempotent by job id) and delete its row. Dying before the delete leaves
   the row, which the job's own rerun relays first thing (outbox.py), or any dispatch of the tenant once
   the job is provably dead; a relayed job that already exists is not written again.

So a lead is either still due, or marked with its job in the outbox or in its queue; and a job exists only
for a lead whose dispatch committed.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import asyncpg
from loguru import logger

from src import results
from src.contracts import Channel, DispatchJobData
from src.db import queries
from src.domain.allocation import BatchAllocator, PhoneState
from src.domain.dispatch import (
    Decision,
    DueLead,
    Outcome,
    job_id_for,
    lead_job_id,
    next_actions,
    output_for,
    plan_batch,
)
from src.domain.lawful import Medium
from src.domain.quota import quota_date
from src.domain.senders import Pace
from src.domain.windows import SendingWindow, next_dispatch_at
from src.errors import NotFound
from src.jobs.dispatch import report
from src.jobs.dispatch.evidence import message_records, suppressed_in
from src.jobs.dispatch.outbox import publish, relay_orphans, running
from src.jobs.dispatch.overlap import while_waiting
from src.jobs.dispatch.reserve import plan_slots_dry, reserve
from src.jobs.tenant import sending_window
from src.redis_io.codec import dumps
from src.redis_io.job_writer import arq_job_bytes_from_json, encode_batch
from src.results import Wire
from src.runtime import chaos, metrics
from src.runtime.clock import epoch_ms
from src.runtime.deps import Deps


@dataclass(frozen=True, slots=True)
class Batch:
    """The due leads one dispatch decides on, with everything their decisions read."""

    data: DispatchJobData
    tenant_id: UUID
    dispatch_job_id: str
    now: datetime
    window: SendingWindow
    today: date  # the tenant-local day whose quota the batch uses
    leads: list[DueLead]
    held_for_review: int
    phones: list[PhoneState]  # the tenant's phones with today's counters
    whatsapp_job_ids: dict[UUID, str]  # journey -> id of its WhatsApp message today
    earlier: dict[UUID, UUID]  # journey -> phone an earlier try of this batch reserved (it died)
    allowed_bases: frozenset[str]  # the tenant's (src/domain/lawful.py); empty: the gate is off
    suppressed: dict[UUID, frozenset[Medium]]  # journey -> the media suppression entries block for it
    pace: Pace  # the tenant's WhatsApp pacing
    portfolio_limit: int | None  # the tenant's unique recipients in 24 h; None: no limit

    @property
    def queue_slots(self) -> dict[UUID, str]:
        return {phone.id: phone.queue_slot for phone in self.phones}


@dataclass(frozen=True, slots=True)
class Plan:
    """Each lead's decision, and the job id of each lead's message (journey -> job id)."""

    batch: Batch
    decisions: list[Decision]
    job_ids: dict[UUID, str]


@dataclass(frozen=True, slots=True)
class Persisted:
    """A committed batch's jobs, as its outbox row holds them, on their way to the queues."""

    outbox_id: int
    job_ids: list[str]  # in the order of `encoded`
    encoded: bytes


async def dispatch_tenant(deps: Deps, data: DispatchJobData, *, dispatch_job_id: str) -> Wire:
    started = time.perf_counter()
    assert isinstance(data.tenant_id, UUID)
    if data.dry_run:
        return await _dispatch(deps, data, dispatch_job_id, started, relayed=0)
    with running(dispatch_job_id):
        # First the batch an earlier try of this job committed and did not enqueue (it died), at once,
        # with those of the tenant's other dead dispatchers.
        relayed = await relay_orphans(deps, tenant_id=data.tenant_id, own_job_id=dispatch_job_id)
        return await _dispatch(deps, data, dispatch_job_id, started, relayed=relayed)


async def _dispatch(
    deps: Deps, data: DispatchJobData, dispatch_job_id: str, started: float, *, relayed: int
) -> Wire:
    now = deps.clock()
    assert isinstance(data.tenant_id, UUID)
    async with deps.pg.acquire() as conn:
        tenant, window = await _load_tenant(conn, data.tenant_id)
        result = results.dispatch_base(
            tenant_id=str(tenant.id),
            dry_run=data.dry_run,
            relayed=relayed,
            next_dispatch_at=next_dispatch_at(window, now),
        )
        if tenant.status != "ACTIVE":
            logger.info("tenant {} is {}: nothing dispatched", tenant.id, tenant.status)
            return report.stamp_processing_time(result, started)
        selection = queries.DueSelection(
            data.tenant_id, now, data.batch_size, data.priority_filter, data.sequence_filter
        )
        if not window.is_open(now):
            return report.stamp_processing_time(await outside_window(conn, data, selection, result), started)

        # The selected rows stay locked until the commit, so a concurrent dispatch of the tenant skips them.
        transaction: AbstractAsyncContextManager[Any] = nullcontext() if data.dry_run else conn.transaction()
        async with transaction:
            batch = await _select(conn, deps, data, selection, window, tenant, dispatch_job_id)
            plan = plan_of(batch)
            if data.dry_run:
                plan = await plan_slots_dry(deps, plan)
                explained = results.explain(plan.decisions, plan.job_ids, batch.queue_slots)
                return report.stamp_processing_time(report_of(result, plan, explained, written={}), started)
            plan = await reserve(deps, plan)
            await chaos.pause(deps.config, "after_reserve")
            persisted = await _persist(conn, deps, plan)

        await chaos.pause(deps.config, "after_commit")
        written, explained = await _publish_explaining(deps, conn, plan, persisted)
    report.count(plan.decisions, held_for_review=plan.batch.held_for_review)
    return report.summarised(
        report.stamp_processing_time(report_of(result, plan, explained, written=written), started)
    )


async def _load_tenant(conn: asyncpg.Connection, tenant_id: UUID) -> tuple[queries.TenantRow, SendingWindow]:
    tenant = await queries.load_tenant(conn, tenant_id=tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return tenant, sending_window(tenant)


async def outside_window(
    conn: asyncpg.Connection, data: DispatchJobData, selection: queries.DueSelection, result: Wire
) -> Wire:
    """Nothing goes out while the tenant's window is closed; the result says how many leads wait."""
    waiting = await queries.due_leads(conn, selection, lock=False)
    return waiting_result(data, result, len(waiting))


def waiting_result(data: DispatchJobData, result: Wire, waiting: int) -> Wire:
    """The result of a tenant whose window is closed, with `waiting` due leads (at most the batch)."""
    logger.info("outside the sending window: {} due leads wait until {}", waiting, result["nextDispatchAt"])
    if not data.dry_run:
        metrics.count_leads("SKIPPED_OUTSIDE_HOURS", "OUTSIDE_SENDING_WINDOW", waiting)
    return results.dispatch_outside_window(result, waiting=waiting)


async def _select(
    conn: asyncpg.Connection,
    deps: Deps,
    data: DispatchJobData,
    selection: queries.DueSelection,
    window: SendingWindow,
    tenant: queries.TenantRow,
    dispatch_job_id: str,
) -> Batch:
    """The due leads (locked unless a dry run), the suppression entries naming them, the tenant's phones,
    and what an earlier try reserved."""
    assert isinstance(data.tenant_id, UUID)
    leads = await queries.due_leads(conn, selection, lock=not data.dry_run)
    held = await queries.count_due_held_for_review(conn, selection)
    suppressed = await suppressed_in(conn, data.tenant_id, leads)
    phones = await queries.tenant_phones(conn, tenant_id=data.tenant_id)
    read = Read.of(data, tenant, window, selection.now, leads, held, suppressed, phones)
    [(used, found)] = await deps.quota.used_and_reserved(
        [(data.tenant_id, read.today, [phone.id for phone in phones], list(read.whatsapp_job_ids.values()))]
    )
    return read.batch(dispatch_job_id, used, found)


@dataclass(frozen=True, slots=True)
class Read:
    """What a dispatch read of one tenant in PostgreSQL: with its Redis counters, its Batch."""

    data: DispatchJobData  # the tenant's own (tenant_id set)
    tenant: queries.TenantRow
    window: SendingWindow
    now: datetime
    leads: list[DueLead]
    held_for_review: int
    suppressed: dict[UUID, frozenset[Medium]]
    phones: list[queries.PhoneRow]
    today: date  # the tenant-local day whose quota the batch uses
    whatsapp_job_ids: dict[UUID, str]  # journey -> id of its WhatsApp message today

    @classmethod
    def of(
        cls,
        data: DispatchJobData,
        tenant: queries.TenantRow,
        window: SendingWindow,
        now: datetime,
        leads: list[DueLead],
        held_for_review: int,
        suppressed: dict[UUID, frozenset[Medium]],
        phones: list[queries.PhoneRow],
    ) -> Read:
        today = quota_date(now, tenant.timezone)
        whatsapp_ids = {lead.journey_id: lead_job_id(lead, True, tenant.id, today) for lead in leads}
        return cls(data, tenant, window, now, leads, held_for_review, suppressed, phones, today, whatsapp_ids)

    def batch(self, dispatch_job_id: str, used: dict[UUID, int], found: dict[str, UUID]) -> Batch:
        """`used`: each phone's counter today; `found`: job id -> phone an earlier try reserved."""
        today, whatsapp_ids, tenant = self.today, self.whatsapp_job_ids, self.tenant
        journeys = {job_id: journey for journey, job_id in whatsapp_ids.items()}
        return Batch(
            data=self.data,
            tenant_id=tenant.id,
            dispatch_job_id=dispatch_job_id,
            now=self.now,
            window=self.window,
            today=today,
            leads=self.leads,
            held_for_review=self.held_for_review,
            phones=[phone.state(used[phone.id], today) for phone in self.phones],
            whatsapp_job_ids=whatsapp_ids,
            earlier={journeys[job_id]: phone for job_id, phone in found.items()},
            allowed_bases=frozenset(tenant.allowed_lawful_bases),
            suppressed=self.suppressed,
            pace=tenant.pace(),
            portfolio_limit=tenant.wa_portfolio_limit,
        )


def plan_of(batch: Batch) -> Plan:
    """Each lead's channel and phone, from a local copy of the phones' remaining quota."""
    allocator = BatchAllocator(batch.tenant_id, batch.phones)
    decisions = plan_batch(
        batch.leads,
        preference=batch.data.channel_preference,
        allocator=allocator,
        allowed_bases=batch.allowed_bases,
        suppressed=batch.suppressed,
        reserved=batch.earlier,
    )
    job_ids = {
        d.lead.journey_id: batch.whatsapp_job_ids[d.lead.journey_id]
        if d.channel is Channel.WHATSAPP
        else job_id_for(d, batch.tenant_id, batch.today)
        for d in decisions
    }
    return Plan(batch, decisions, job_ids)


async def _persist(conn: asyncpg.Connection, deps: Deps, plan: Plan) -> Persisted | None:
    """Update the journeys, record each message's evidence and write the batch's jobs into one outbox
    row, all in the caller's transaction; None when no lead was dispatched. The jobs are encoded while
    the UPDATE runs."""
    batch = plan.batch
    messages = message_records(plan.decisions, plan.job_ids, now=batch.now, slots=batch.queue_slots)
    update = queries.update_journeys(
        conn, tenant_id=batch.tenant_id, now=batch.now, updates=journey_updates(deps, plan), messages=messages
    )
    _, (job_ids, encoded) = await while_waiting(update, partial(encode_jobs, deps, plan))
    if not job_ids:
        return None
    outbox_id = await queries.insert_outbox(
        conn,
        tenant_id=batch.tenant_id,
        dispatch_job_id=batch.dispatch_job_id,
        job_count=len(job_ids),
        jobs=encoded,
    )
    return Persisted(outbox_id, job_ids, encoded)


def journey_updates(deps: Deps, plan: Plan) -> list[queries.JourneyUpdate]:
    """Each decided journey's new sticky phone, channel and next action."""
    batch = plan.batch
    after = next_actions(
        now=batch.now,
        window=batch.window,
        redispatch_after=timedelta(seconds=deps.config.redispatch_after_s),
        no_channel_recheck=timedelta(seconds=deps.config.no_channel_recheck_s),
    )
    return [
        queries.JourneyUpdate(
            journey_id=d.lead.journey_id,
            phone_id=d.phone_id if d.is_whatsapp else None,
            channel=d.channel.value if d.outcome is Outcome.DISPATCHED and d.channel else None,
            next_action_at=after[d.outcome],
        )
        for d in plan.decisions
    ]


def encode_jobs(deps: Deps, plan: Plan) -> tuple[list[str], bytes]:
    """The dispatched leads' jobs, as arq stores them and as the enqueue script takes a batch; a WhatsApp
    job scored with its slot on the host's clock, as arq's `_defer_until` would."""
    batch = plan.batch
    wall_ms = deps.clock.wall_ms(batch.now)
    host_offset_ms = wall_ms - epoch_ms(batch.now)  # the host's clock ahead of the service's
    slots = batch.queue_slots
    jobs = []
    for d in plan.decisions:
        if d.outcome is Outcome.DISPATCHED:
            queue, function, payload = output_for(
                d,
                tenant_id=batch.tenant_id,
                correlation_id=batch.data.correlation_id,
                dispatch_job_id=batch.dispatch_job_id,
                queue_slots=slots,
            )
            body = arq_job_bytes_from_json(function, dumps(payload), wall_ms)
            due = epoch_ms(d.scheduled_at) + host_offset_ms if d.scheduled_at else None
            jobs.append((plan.job_ids[d.lead.journey_id], queue, body, due))
    return [job[0] for job in jobs], encode_batch(jobs) if jobs else b""


async def _publish_explaining(
    deps: Deps, conn: asyncpg.Connection, plan: Plan, persisted: Persisted | None
) -> tuple[dict[str, bool], results.Explained]:
    """Enqueue the committed batch and delete its row; the result explains the batch while Redis works.
    Per job id, whether this call wrote it (empty when a relay took the row: it enqueues the jobs)."""
    explain = partial(results.explain, plan.decisions, plan.job_ids, plan.batch.queue_slots)
    if persisted is None:
        return {}, explain()
    published, explained = await while_waiting(
        publish(deps, conn, persisted.outbox_id, persisted.encoded, len(persisted.job_ids)), explain
    )
    if published is None:  # a relay holds the row: it enqueues the jobs
        return {}, explained
    return dict(zip(persisted.job_ids, published, strict=True)), explained


def report_of(result: Wire, plan: Plan, explained: results.Explained, *, written: dict[str, bool]) -> Wire:
    return results.dispatch_batch(
        result, plan.decisions, explained, written=written, held_for_review=plan.batch.held_for_review
    )
