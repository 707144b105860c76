"""SIGTERM on a real worker process: in-flight jobs finish within SHUTDOWN_GRACE_S, then it exits 0;
a job still running when the grace ends is cancelled and stays queued, and runs again on the next worker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from uuid import UUID

from redis.asyncio import Redis

from src.client import EnqueuedJob, OutreachClient
from src.contracts import DispatchResult
from src.names import ARQ_IN_PROGRESS_PREFIX, Queue, quota_key
from src.runtime.deps import Deps
from tests.support.factories import Factory, tenant_with_phone
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import WorkerProcess, Workers


async def wait_in_progress(job: EnqueuedJob[DispatchResult], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while await job.status() != "in_progress":
        assert time.monotonic() < deadline, f"job still {await job.status()} after {timeout}s"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def sigterm_during_a_dispatch(
    worker: WorkerProcess, redis: Redis, client: OutreachClient, tenant: UUID
) -> AsyncIterator[EnqueuedJob[DispatchResult]]:
    """`worker` started, a dispatch of `tenant` in progress on it (held there by the worker's
    CHAOS_PAUSE_*), then SIGTERM sent to the worker; yields the dispatch."""
    async with worker:
        await worker.wait_healthy(redis)
        job = await client.dispatch(tenant_id=tenant)
        await wait_in_progress(job)
        worker.signal(signal.SIGTERM)
        yield job


async def test_sigterm_lets_the_in_flight_job_finish_then_exits_0(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await tenant_with_phone(factory, phone_number="+40721000077")
    await factory.leads(tenant, 3)
    worker = workers.new("Settings", CHAOS_PAUSE_AT="after_reserve", CHAOS_PAUSE_S="2", SHUTDOWN_GRACE_S="20")
    async with sigterm_during_a_dispatch(worker, redis, client, tenant) as job:
        signalled = time.monotonic()
        assert await worker.wait_exit(timeout=30) == 0
        took = time.monotonic() - signalled
        assert "SIGTERM received: draining 4 queue workers (grace 20s)" in worker.output()

    result = await job.result(timeout=1)
    assert result.dispatched_to_whatsapp == 3
    assert await redis.zcard("q:wa:phone_77") == 3
    assert took < 15  # it waited for the job, not for the whole grace period


async def test_a_job_outliving_the_grace_is_cancelled_stays_queued_and_runs_again(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000077")
    await factory.leads(tenant, 2)
    slow = workers.new("Settings", CHAOS_PAUSE_AT="after_reserve", CHAOS_PAUSE_S="25", SHUTDOWN_GRACE_S="1")
    async with sigterm_during_a_dispatch(slow, redis, client, tenant) as job:
        signalled = time.monotonic()
        assert await slow.wait_exit(timeout=20) == 0
        assert time.monotonic() - signalled < 10  # the grace bounded the wait, not the 25 s job
        assert "grace period over: cancelling 1 jobs" in slow.output()

    assert await job.status() == "queued"
    assert not await redis.exists(ARQ_IN_PROGRESS_PREFIX + job.job_id)
    assert await redis.zscore(Queue.DISPATCH.value, job.job_id) is not None
    assert await redis.zcard("q:wa:phone_77") == 0  # cancelled before anything was committed

    async with workers.new("Settings") as fresh:
        await fresh.wait_healthy(redis)
        result = await job.result(timeout=20)
    assert result.dispatched_to_whatsapp == 2
    assert await redis.zcard("q:wa:phone_77") == 2
    state = await client.job_state(job.job_id)
    assert state.job_try == 2
    # The reservation of the cancelled try is reused, not taken twice (on the worker's day, which is the
    # test's: the workers run on the test's clock).
    assert int(await redis.get(quota_key(phone, today)) or 0) == 2
