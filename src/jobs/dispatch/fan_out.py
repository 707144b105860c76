"""dispatch of "ALL": one dispatch job per ACTIVE tenant, id `dispatch:{tenant}:{tick}`, so that a tick
runs once per tenant however many processes run the cron.

Each tenant stands alone: one whose row the service cannot use (an unknown timezone, a window it cannot
read) is left out and reported in `tenantErrors` with the failure its own dispatch would meet
(BAD_CONFIGURATION), and every other tenant's dispatch goes out.
"""

from __future__ import annotations

import time
from uuid import UUID

from loguru import logger

from src import results
from src.contracts import DispatchJobData
from src.db import queries
from src.domain.windows import next_cron_tick
from src.errors import JobError
from src.jobs.dispatch.batch import dispatch_tenant
from src.jobs.dispatch.outbox import relay_orphans
from src.jobs.dispatch.report import stamp_processing_time
from src.jobs.tenant import sending_window
from src.names import Function, Queue, tenant_dispatch_job_id
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
    jobs = [
        OutgoingJob(
            tenant_dispatch_job_id(tenant, tick),
            Queue.DISPATCH,
            Function.DISPATCH,
            data.model_copy(update={"tenant_id": tenant}).wire(),
        )
        for tenant in tenants
    ]
    written = await deps.job_writer.enqueue(jobs, now_ms=deps.clock.wall_ms(now))
    if any(written):
        await wake_workers(deps.redis, Queue.DISPATCH)
    logger.info("fan-out {}: {} tenants, {} new dispatch jobs", tick, len(tenants), sum(written))
    await _expire_evidence(deps)
    tenant_jobs = [(t, j.job_id, w) for t, j, w in zip(tenants, jobs, written, strict=True)]
    result = results.dispatch_fan_out(
        tenant_jobs, errors, relayed=relayed, next_dispatch_at=next_cron_tick(now)
    )
    return stamp_processing_time(result, started)


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
