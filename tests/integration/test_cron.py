"""The */5 cron: one dispatch of each active tenant per tick, however many workers enqueue or run it."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from src.jobs.dispatch import dispatch_cron
from src.names import DISPATCH_CRON_NAME, Queue
from src.runtime.deps import Deps
from src.runtime.queues import CRON_KEEP_RESULT_S, worker_options
from tests.support.factories import Factory
from tests.support.services import make_settings

TICK_MS = int(datetime(2026, 11, 25, 8, 5, 0, 123_456, tzinfo=UTC).timestamp() * 1000)


async def test_two_workers_running_the_same_tick_fan_out_once(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenants = sorted([await factory.tenant(), await factory.tenant()])
    await factory.tenant(status="SUSPENDED")

    first = await dispatch_cron({"deps": deps, "job_id": f"{DISPATCH_CRON_NAME}:{TICK_MS}", "score": TICK_MS})
    # A second process whose clock ran late enqueues and runs the same tick again.
    second = await dispatch_cron(
        {"deps": deps, "job_id": f"{DISPATCH_CRON_NAME}:{TICK_MS}", "score": TICK_MS + 900}
    )

    # Both tenants in one job (DISPATCH_GROUP_LEADS), named after them and the tick.
    expected = [f"dispatch:{tenants[0]}..{tenants[1]}:tick-20261125T0805Z"]
    assert sorted({job["jobId"] for job in first["tenantJobs"]}) == expected
    assert all(job["enqueued"] for job in first["tenantJobs"])
    assert not any(job["enqueued"] for job in second["tenantJobs"])
    queued = sorted(member.decode() for member in await redis.zrange(Queue.DISPATCH.value, 0, -1))
    assert queued == expected
    assert first["nextDispatchAt"] is not None


def test_the_cron_runs_every_five_minutes_and_keeps_its_result() -> None:
    [cron_job] = worker_options(Queue.DISPATCH, make_settings())["cron_jobs"]
    assert cron_job.name == DISPATCH_CRON_NAME
    assert cron_job.minute == set(range(0, 60, 5))
    assert cron_job.second == 0
    assert cron_job.unique
    assert cron_job.keep_result_s == CRON_KEEP_RESULT_S >= 3600
    assert cron_job.timeout_s == 30
    assert worker_options(Queue.DISPATCH, make_settings(dispatch_cron_enabled=False))["cron_jobs"] == []
    assert worker_options(Queue.ROUTER, make_settings())["cron_jobs"] == []
