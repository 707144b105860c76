"""dispatch: pick a tenant's due leads and send each to its channel, exactly once per step and day.

dispatch        the job: one tenant (batch.py), several together (group.py), or "ALL" (fan_out.py),
                which enqueues those
dispatch_cron   the */5 cron: "ALL", with job ids derived from the tick
outbox.py       the transactional outbox that carries a committed batch to its queues
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from src.contracts import ALL_TENANTS, DispatchJobData
from src.domain.windows import cron_tick_floor
from src.jobs.base import JobInfo, job
from src.jobs.dispatch.batch import dispatch_tenant
from src.jobs.dispatch.fan_out import fan_out
from src.jobs.dispatch.group import dispatch_group
from src.names import Function, cron_tick_label
from src.results import Wire
from src.runtime.deps import Deps

__all__ = ["dispatch", "dispatch_cron", "dispatch_group", "dispatch_tenant", "fan_out"]


@job(Function.DISPATCH, DispatchJobData)
async def dispatch(deps: Deps, data: DispatchJobData, info: JobInfo) -> Wire:
    if data.tenant_ids is not None:
        return await dispatch_group(deps, data, dispatch_job_id=info.job_id)
    if data.tenant_id == ALL_TENANTS:
        return await fan_out(deps, data, tick=info.job_id)
    return await dispatch_tenant(deps, data, dispatch_job_id=info.job_id)


async def dispatch_cron(ctx: dict[str, Any]) -> Wire:
    """The */5 cron: dispatch for every active tenant, with job ids derived from the tick."""
    scheduled = datetime.fromtimestamp(ctx["score"] / 1000, UTC)
    tick = cron_tick_label(cron_tick_floor(scheduled))
    data = DispatchJobData(correlation_id=f"cron-{tick}", tenant_id=ALL_TENANTS)
    return await fan_out(ctx["deps"], data, tick=tick)
