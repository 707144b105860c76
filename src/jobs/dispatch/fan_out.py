"""dispatch of "ALL": the ACTIVE tenants, in id order, in dispatch jobs of as many tenants as
DISPATCH_GROUP_LEADS allow at the batch size: a tenant alone gets `dispatch:{tenant}:{tick}`, several get
one job of tenantIds, `dispatch:{first}..{last}:{tick}` (group.py). The ids derive from tenants and tick,
so that a tick runs once per tenant however many processes run the cron.

Each tenant stands alone: one whose row the service cannot use (an unknown timezone, a window it cannot
read) is left out and reported in `tenantErrors` with the failure its own dispatch would meet
(BAD_CONFIGURATION), and every other tenant's dispatch goes out.
"""

from __future__ import annotations

import time
from uuid import UUID

from loguru import logger

from src import results
from src.contracts import MAX_GROUP_TENANTS, DispatchJobData
from src.db import queries
from src.domain.windows import next_cron_tick
from src.errors import JobError
from src.jobs.dispatch.batch import dispatch_tenant
from src.jobs.dispatch.outbox import relay_orphans
from src.jobs.dispatch.report import stamp_processing_time
from src.jobs.tenant import sending_window
from src.names import Function, Queue, group_dispatch_job_id, tenant_dispatch_job_id
from src.redis_io.job_writer import OutgoingJob
from src.results import Wire
from src.runtime.deps import Deps
from src.runtime.wakeup import wake_workers


async def fan_out(deps: Deps, data: DispatchJobData, *, tick: str) -> Wire:
    started = time.perf_counter()
    now = deps.clock()
    async with deps.pg.acquire() as conn:
        tenants, errors = _usable(await queries.active_tenants(conn), tick)
    if data.dry_run:
        plans = []
        for tenant in tenants:
            try:
                plans.append(await _plan(deps, data, tenant, tick))
            except JobError as exc:  # its row changed since it was read
                errors.append(_left_out(tenant, exc, tick))
        result = results.dispatch_plans(plans, errors, next_dispatch_at=next_cron_tick(now))
        return stamp_processing_time(result, started)

    relayed = await relay_orphans(deps, tenant_id=None)
    groups = _groups(tenants, size=max(1, deps.config.dispatch_group_leads // data.batch_size))
    jobs = [_job(data, group, tick) for group in groups]
    written = await deps.job_writer.enqueue(jobs, now_ms=deps.clock.wall_ms(now))
    if any(written):
        await wake_workers(deps.redis, Queue.DISPATCH)
    logger.info(
        "fan-out {}: {} tenants, {} new dispatch jobs of {}", tick, len(tenants), sum(written), len(jobs)
    )
    await _expire_evidence(deps)
    tenant_jobs = [
        (tenant, job.job_id, new)
        for group, job, new in zip(groups, jobs, written, strict=True)
        for tenant in group
    ]
    result = results.dispatch_fan_out(
        tenant_jobs, errors, relayed=relayed, next_dispatch_at=next_cron_tick(now)
    )
    return stamp_processing_time(result, started)


def _groups(tenants: list[UUID], *, size: int) -> list[list[UUID]]:
    """The tenants (in id order) in runs of `size`, at most MAX_GROUP_TENANTS."""
    size = min(size, MAX_GROUP_TENANTS)
    return [tenants[start : start + size] for start in range(0, len(tenants), size)]


def _job(data: DispatchJobData, group: list[UUID], tick: str) -> OutgoingJob:
    """A tenant alone: its own dispatch job, `dispatch:{tenant}:{tick}`; several: one job of tenantIds,
    named after the first and last of them. Either id is derived from the tenants and the tick, so a rerun
    of the tick's fan-out over the same tenants enqueues nothing twice."""
    if len(group) == 1:
        job_id, own = tenant_dispatch_job_id(group[0], tick), data.model_copy(update={"tenant_id": group[0]})
    else:
        job_id, own = group_dispatch_job_id(group, tick), data.model_copy(update={"tenant_ids": group})
    return OutgoingJob(job_id, Queue.DISPATCH, Function.DISPATCH, own.wire())


async def _expire_evidence(deps: Deps) -> None:
    """One bounded batch of the retention delete of outreach_messages per tick: the cron's fan-out runs
    every 5 minutes, so MESSAGE_RETENTION_BATCH rows a tick keep up with far more than any day sends."""
    config = deps.config
    async with deps.pg.acquire() as conn:
        deleted = await queries.delete_expired_messages(
            conn, retention_days=config.message_retention_days, limit=config.message_retention_batch
        )
    if deleted:
        logger.info(
            "deleted {} message records older than {} days (MESSAGE_RETENTION_DAYS)",
            deleted,
            config.message_retention_days,
        )


def _usable(rows: list[queries.TenantRow], tick: str) -> tuple[list[UUID], list[Wire]]:
    """The tenants whose rows the service can use, and a TenantError for each of the others."""
    usable, errors = [], []
    for row in rows:
        try:
            sending_window(row)
        except JobError as exc:
            errors.append(_left_out(row.id, exc, tick))
        else:
            usable.append(row.id)
    return usable, errors


async def _plan(deps: Deps, data: DispatchJobData, tenant_id: UUID, tick: str) -> Wire:
    """A dry run of one tenant, in the process running the fan-out."""
    return await dispatch_tenant(deps, data.model_copy(update={"tenant_id": tenant_id}), dispatch_job_id=tick)


def _left_out(tenant_id: UUID, exc: JobError, tick: str) -> Wire:
    logger.warning("fan-out {}: tenant {} left out, {}: {}", tick, tenant_id, exc.code, exc)
    return results.tenant_error(tenant_id, exc)
