"""dispatch of several tenants together (tenantIds): what the fan-out enqueues for small tenants.

Each tenant is dispatched exactly as its own dispatch job would be (batch.py: the same selection, plan,
reservation, journey update, evidence and outbox), but the group shares the round trips: one statement
selects every tenant's due leads (each with its own limit), one reads their phones, one their suppression
entries, one pipeline their Redis counters, one statement updates all the journeys and records all the
evidence, one inserts each tenant's outbox row, one transaction commits them, and one enqueue publishes
them. The tenants whose window is closed (at night, all of them) have their waiting leads counted in one
statement too. A small tenant's dispatch is a dozen round trips of its own, most of its cost: ten
thousand tenants of twenty leads each took twice as long as the same leads in one tenant
(bench/through_worker.py).

The order of the writes, and so what a worker killed at any instant leaves, is batch.py's: reservations
(idempotent per message job id), then one commit of journeys and outbox rows, then the enqueue and the
rows' delete. The rows carry this job's id, so its next try relays them first thing, and any later
dispatch of their tenants once this job is provably dead (outbox.py).

One tenant cannot hold the others back: a tenant whose row is missing or unusable is reported in
`tenantErrors`, and a group that fails for any reason but a transient fault is dispatched again one
tenant at a time, each with its own transaction, so that only the tenant at fault fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from uuid import UUID

import asyncpg
from loguru import logger

from src import results
from src.contracts import DispatchJobData
from src.db import queries
from src.domain.windows import SendingWindow, next_cron_tick, next_dispatch_at
from src.errors import JobError, NotFound
from src.jobs.dispatch import report
from src.jobs.dispatch.batch import (
    Persisted,
    Plan,
    Read,
    dispatch_tenant,
    encode_jobs,
    journey_updates,
    plan_of,
    report_of,
    waiting_result,
)
from src.jobs.dispatch.evidence import message_records, suppressed_in_tenants
from src.jobs.dispatch.outbox import publish_many, relay_orphans, running
from src.jobs.dispatch.overlap import while_waiting
from src.jobs.dispatch.reserve import reserve_all
from src.jobs.tenant import sending_window
from src.results import Wire
from src.runtime import chaos
from src.runtime.deps import Deps
from src.runtime.faults import describe, transient_fault


@dataclass(frozen=True, slots=True)
class _Open:
    """A tenant of the group whose window is open: dispatched in the shared transaction."""

    data: DispatchJobData  # the tenant's own
    tenant: queries.TenantRow
    window: SendingWindow
    result: Wire  # its DispatchResult so far


async def dispatch_group(deps: Deps, data: DispatchJobData, *, dispatch_job_id: str) -> Wire:
    started = time.perf_counter()
    assert data.tenant_ids is not None
    tenant_ids = list(data.tenant_ids)
    if data.dry_run:  # a plan writes nothing: each tenant's own dry run
        done, errors = await _one_by_one(deps, data, tenant_ids, dispatch_job_id)
        return _grouped(deps, data, done, errors, relayed=0, started=started)
    with running(dispatch_job_id):
        relayed = await relay_orphans(deps, tenant_id=tenant_ids, own_job_id=dispatch_job_id)
        try:
            done, errors = await _together(deps, data, tenant_ids, dispatch_job_id)
        except Exception as exc:
            if isinstance(exc, JobError) or transient_fault(exc) is not None:
                raise  # retried as a whole: every step is idempotent
            logger.opt(exception=exc).warning(
                "dispatch of {} tenants together failed; each tenant on its own now", len(tenant_ids)
            )
            done, errors = await _one_by_one(deps, data, tenant_ids, dispatch_job_id)
    return _grouped(deps, data, done, errors, relayed=relayed, started=started)


def _grouped(
    deps: Deps,
    data: DispatchJobData,
    done: Sequence[Wire],
    errors: Sequence[Wire],
    *,
    relayed: int,
    started: float,
) -> Wire:
    result = results.dispatch_group(
        done, errors, dry_run=data.dry_run, relayed=relayed, next_dispatch_at=next_cron_tick(deps.clock())
    )
    return report.summarised(report.stamp_processing_time(result, started))


async def _one_by_one(
    deps: Deps, data: DispatchJobData, tenant_ids: Sequence[UUID], dispatch_job_id: str
) -> tuple[list[Wire], list[Wire]]:
    """Each tenant's own dispatch, one after another; one that fails is reported, not raised."""
    done, errors = [], []
    for tenant_id in tenant_ids:
        own = data.model_copy(update={"tenant_id": tenant_id, "tenant_ids": None})
        try:
            done.append(await dispatch_tenant(deps, own, dispatch_job_id=dispatch_job_id))
        except JobError as exc:
            errors.append(_failed(tenant_id, exc))
        except Exception as exc:
            if transient_fault(exc) is not None:
                raise
            logger.opt(exception=exc).error("dispatch of tenant {} failed", tenant_id)
            errors.append({"tenantId": str(tenant_id), "error": JobError.code, "message": describe(exc)})
    return done, errors


def _failed(tenant_id: UUID, exc: JobError) -> Wire:
    logger.warning("tenant {} not dispatched, {}: {}", tenant_id, exc.code, exc)
    return results.tenant_error(tenant_id, exc)


async def _together(
    deps: Deps, data: DispatchJobData, tenant_ids: Sequence[UUID], dispatch_job_id: str
) -> tuple[list[Wire], list[Wire]]:
    now = deps.clock()
    done: list[Wire] = []
    errors: list[Wire] = []
    async with deps.pg.acquire() as conn:
        rows = {row.id: row for row in await queries.load_tenants(conn, tenant_ids=tenant_ids)}
        group: list[_Open] = []
        closed: list[_Open] = []
        for tenant_id in tenant_ids:
            tenant = rows.get(tenant_id)
            if tenant is None:
                errors.append(_failed(tenant_id, NotFound(f"tenant {tenant_id} not found")))
                continue
            try:
                window = sending_window(tenant)
            except JobError as exc:
                errors.append(_failed(tenant_id, exc))
                continue
            own = data.model_copy(update={"tenant_id": tenant_id, "tenant_ids": None})
            result = results.dispatch_base(
                tenant_id=str(tenant_id),
                dry_run=False,
                relayed=0,
                next_dispatch_at=next_dispatch_at(window, now),
            )
            if tenant.status != "ACTIVE":
                done.append(result)
            elif not window.is_open(now):
                closed.append(_Open(own, tenant, window, result))
            else:
                group.append(_Open(own, tenant, window, result))
        if closed:  # the leads that wait, counted in one statement (at night: every tenant)
            selection = _selection(closed[0].data, now)
            ids = [member.tenant.id for member in closed]
            waiting = await queries.due_leads_of_tenants(conn, selection, tenant_ids=ids, lock=False)
            done += [waiting_result(m.data, m.result, len(waiting.get(m.tenant.id, []))) for m in closed]
        if group:
            done += await _dispatch_open(deps, conn, group, now=now, dispatch_job_id=dispatch_job_id)
    order = {str(tenant_id): n for n, tenant_id in enumerate(tenant_ids)}
    return sorted(done, key=lambda result: order[result["tenantId"]]), errors


def _selection(data: DispatchJobData, now: datetime) -> queries.DueSelection:
    assert isinstance(data.tenant_id, UUID)
    return queries.DueSelection(
        data.tenant_id, now, data.batch_size, data.priority_filter, data.sequence_filter
    )


async def _dispatch_open(
    deps: Deps, conn: asyncpg.Connection, group: list[_Open], *, now: datetime, dispatch_job_id: str
) -> list[Wire]:
    """batch.py's select, plan, reserve, persist and publish, for every tenant of `group` at once."""
    selection = _selection(group[0].data, now)  # the filters and limit of every tenant's selection
    ids = [member.tenant.id for member in group]
    async with conn.transaction():
        leads = await queries.due_leads_of_tenants(conn, selection, tenant_ids=ids)
        held = await queries.count_held_of_tenants(conn, selection, tenant_ids=ids)
        suppressed = await suppressed_in_tenants(conn, leads)
        phones = await queries.phones_of_tenants(conn, tenant_ids=ids)
        reads = [
            Read.of(
                m.data,
                m.tenant,
                m.window,
                selection.now,
                leads.get(m.tenant.id, []),
                held.get(m.tenant.id, 0),
                suppressed.get(m.tenant.id, {}),
                phones.get(m.tenant.id, []),
            )
            for m in group
        ]
        counters = await deps.quota.used_and_reserved(
            [
                (r.tenant.id, r.today, [p.id for p in r.phones], list(r.whatsapp_job_ids.values()))
                for r in reads
            ]
        )
        plans = await reserve_all(
            deps,
            [
                plan_of(read.batch(dispatch_job_id, used, found))
                for read, (used, found) in zip(reads, counters, strict=True)
            ],
        )
        await chaos.pause(deps.config, "after_reserve")
        persisted = await _persist(conn, deps, plans, dispatch_job_id)

    await chaos.pause(deps.config, "after_commit")
    rows = [(p.outbox_id, p.encoded, len(p.job_ids)) for p in persisted.values()]
    if rows:
        written_by_row, explained = await while_waiting(
            publish_many(deps, conn, rows), partial(_explain, plans)
        )
    else:
        written_by_row, explained = {}, _explain(plans)
    out = []
    for member, plan, explanation in zip(group, plans, explained, strict=True):
        row = persisted.get(member.tenant.id)
        flags = written_by_row.get(row.outbox_id) if row is not None else None
        written = dict(zip(row.job_ids, flags, strict=True)) if row is not None and flags is not None else {}
        report.count(plan.decisions, held_for_review=plan.batch.held_for_review)
        out.append(report_of(member.result, plan, explanation, written=written))
    return out


def _explain(plans: Sequence[Plan]) -> list[results.Explained]:
    return [results.explain(p.decisions, p.job_ids, p.batch.queue_slots) for p in plans]


async def _persist(
    conn: asyncpg.Connection, deps: Deps, plans: Sequence[Plan], dispatch_job_id: str
) -> dict[UUID, Persisted]:
    """Every tenant's journeys and evidence in one statement, and an outbox row for each tenant that
    dispatched a lead, in the caller's transaction; the jobs are encoded while the UPDATE runs."""
    batches = [
        (
            p.batch.tenant_id,
            message_records(p.decisions, p.job_ids, now=p.batch.now, slots=p.batch.queue_slots),
        )
        for p in plans
    ]
    update = queries.update_journeys_of_tenants(
        conn,
        now=plans[0].batch.now,
        updates=[(p.batch.tenant_id, u) for p in plans for u in journey_updates(deps, p)],
        messages=queries.TenantMessages([(tenant, batch) for tenant, batch in batches if len(batch)]),
    )
    _, encoded = await while_waiting(update, lambda: [encode_jobs(deps, p) for p in plans])
    outgoing = [
        (plan.batch.tenant_id, job_ids, jobs)
        for plan, (job_ids, jobs) in zip(plans, encoded, strict=True)
        if job_ids
    ]
    if not outgoing:
        return {}
    ids = await queries.insert_outboxes(
        conn,
        dispatch_job_id=dispatch_job_id,
        batches=[(tenant, len(job_ids), jobs) for tenant, job_ids, jobs in outgoing],
    )
    return {tenant: Persisted(ids[tenant], job_ids, jobs) for tenant, job_ids, jobs in outgoing}
