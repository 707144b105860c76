"""A pooled PostgreSQL connection the server closed (a restart, pg_terminate_backend, a proxy timeout) is
replaced when a job next acquires it: the job does not fail, nor retry."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.jobs.dispatch import dispatch
from src.jobs.select_channel import select_channel
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import job_ctx
from tests.support.tenants import ALWAYS_OPEN


async def pool_pids(deps: Deps) -> set[int]:
    """The server pids of every connection the jobs' pool holds open, idle ones included."""
    connections = [await deps.pg.acquire() for _ in range(deps.pg.get_size())]
    try:
        return {conn.get_server_pid() for conn in connections}
    finally:
        for conn in connections:
            await deps.pg.release(conn)


async def test_jobs_run_on_new_connections_after_the_server_closed_the_pooled_ones(
    deps: Deps, factory: Factory, engine: AsyncEngine
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    lead = await factory.lead(tenant, company={"telefon_principal": "0721 555 666"})
    selection = {"tenantId": str(tenant), "leadId": str(lead)}
    await select_channel(job_ctx(deps), selection)
    await dispatch(
        job_ctx(deps, job_id="d-1"), {"correlationId": "c", "tenantId": str(tenant), "dryRun": True}
    )
    before = await pool_pids(deps)
    assert before

    async with engine.connect() as admin:
        terminated = await admin.scalar(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
            {"pids": list(before)},
        )
    assert terminated == len(before)
    await asyncio.sleep(0.2)  # the event loop reads the servers' goodbyes

    result = await select_channel(job_ctx(deps, job_id="select-2"), selection)
    dispatched = await dispatch(job_ctx(deps, job_id="d-2"), {"correlationId": "c", "tenantId": str(tenant)})

    assert result["selectedChannel"] == "WHATSAPP"
    assert dispatched["dispatchedToWhatsApp"] == 1
    assert (await pool_pids(deps)).isdisjoint(before)
