"""Outbox rows left by a dispatch interrupted between its commit and its enqueue: who relays them, when.

A dispatch is interrupted here in-process: it pauses right after its commit (CHAOS_PAUSE_AT) and its task
is cancelled there, which leaves what a SIGKILL leaves (tests/e2e/failure/test_outbox_relay.py does it with
real processes). The grace is an hour throughout, so that anything relayed at once is relayed because
its job is known dead, not because it is old.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.names import ARQ_IN_PROGRESS_PREFIX
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory, tenant_with_leads
from tests.support.invariants import ledger
from tests.support.jobs import deps_with, run_dispatch

GRACE = {"outbox_relay_grace_s": 3600}


@pytest.fixture
async def patient(deps: Deps, clock: FixedClock) -> AsyncIterator[Deps]:
    """Dispatch's resources with an hour of OUTBOX_RELAY_GRACE_S."""
    async with deps_with(clock, **GRACE) as built:
        yield built


@pytest.fixture
async def pausing(deps: Deps, clock: FixedClock) -> AsyncIterator[Deps]:
    """The same, for a dispatch that stops right after its commit."""
    async with deps_with(clock, **GRACE, chaos_pause_at="after_commit", chaos_pause_s=60) as built:
        yield built


async def committed_not_enqueued(
    pausing: Deps, factory: Factory, tenant: UUID, job_id: str
) -> asyncio.Task[Any]:
    """A dispatch of 10 leads stopped between its commit and its enqueue; still running (paused)."""
    task = asyncio.create_task(run_dispatch(pausing, tenant, job_id, batchSize=10))
    sql = "SELECT count(*) FROM dispatch_outbox WHERE dispatch_job_id = :job_id"
    for _ in range(200):
        if await factory.scalar(sql, job_id=job_id):
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} did not commit")


async def killed_after_commit(pausing: Deps, factory: Factory, tenant: UUID, job_id: str) -> None:
    task = await committed_not_enqueued(pausing, factory, tenant, job_id)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def killed_and_running_again(pausing: Deps, factory: Factory, redis: Redis, job_id: str) -> UUID:
    """A tenant of 10 leads whose dispatch `job_id` was killed after its commit, and which arq runs again:
    its in-progress key exists again, as for any job that is running."""
    tenant = await tenant_with_leads(factory, 10)
    await killed_after_commit(pausing, factory, tenant, job_id)
    await redis.set(ARQ_IN_PROGRESS_PREFIX + job_id, b"1", px=40_000)
    return tenant


async def outbox_jobs_of(factory: Factory) -> dict[str, int]:
    async with factory.engine.connect() as conn:
        rows = await conn.execute(text("SELECT dispatch_job_id, job_count FROM dispatch_outbox"))
        return {row.dispatch_job_id: row.job_count for row in rows}


async def test_a_rerun_relays_its_own_earlier_try_at_once(
    patient: Deps, pausing: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, today: date
) -> None:
    tenant = await killed_and_running_again(pausing, factory, redis, "killed-job")  # arq starts its try 2

    rerun = await run_dispatch(patient, tenant, "killed-job", batchSize=10, job_try=2)

    assert rerun["relayedFromOutbox"] == 10
    assert rerun["totalEligibleLeads"] == 0
    assert await outbox_jobs_of(factory) == {}
    book = await ledger(engine, redis, today)
    book.assert_each_lead_once(10)


async def test_a_dead_jobs_row_goes_at_once_and_a_running_ones_waits(
    patient: Deps, pausing: Deps, factory: Factory, engine: AsyncEngine, redis: Redis
) -> None:
    tenant = await tenant_with_leads(factory, 40)
    await redis.set(ARQ_IN_PROGRESS_PREFIX + "elsewhere-job", b"1", px=40_000)  # a worker still runs it
    await killed_after_commit(pausing, factory, tenant, "elsewhere-job")
    here = await committed_not_enqueued(pausing, factory, tenant, "here-job")  # runs in this process
    try:
        await killed_after_commit(pausing, factory, tenant, "dead-job")
        tick = await run_dispatch(patient, tenant, "next-tick", batchSize=10)
        left = await outbox_jobs_of(factory)
    finally:
        here.cancel()
        await asyncio.gather(here, return_exceptions=True)

    assert tick["relayedFromOutbox"] == 10  # dead-job's, without waiting for the grace
    assert tick["dispatchedToWhatsApp"] == 10  # the last ten leads
    assert left == {"elsewhere-job": 10, "here-job": 10}


async def test_the_grace_is_measured_on_the_database_clock(
    patient: Deps, pausing: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, clock: FixedClock
) -> None:
    tenant = await killed_and_running_again(pausing, factory, redis, "slow-job")

    start = clock.now
    clock.now = start + timedelta(days=3650)  # the service's clock says the row is ten years old
    young = await run_dispatch(patient, tenant, "tick-1", batchSize=10, priorityFilter="HIGH")
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE dispatch_outbox SET created_at = now() - interval '61 minutes'"))
    clock.now = start - timedelta(days=3650)  # and now ten years younger than its commit
    old = await run_dispatch(patient, tenant, "tick-2", batchSize=10, priorityFilter="HIGH")

    assert young["relayedFromOutbox"] == 0
    assert old["relayedFromOutbox"] == 10
    assert await outbox_jobs_of(factory) == {}
