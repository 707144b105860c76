"""Pacing and warm-up through a real worker process (issue 10): a dispatch enqueued by the client, run by
`arq src.worker.DispatchSettings` on the test's clock, its result read back.

The worker's clock runs on from TEST_NOW, so the tenants here live in a fixed-offset zone in which that
instant reads about noon: the windows below then fall inside one tenant-local day whatever TEST_NOW is."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from src.contracts import DispatchResult
from src.runtime.clock import FixedClock
from tests.support.factories import Factory, phone_on_warm_up_day_3
from tests.support.tenants import noon_zone
from tests.support.workers import Workers

EVERY_DAY = {"send_days": [1, 2, 3, 4, 5, 6, 7], "skip_public_holidays": False}


def local(now: datetime, zone: str) -> datetime:
    return now.astimezone(ZoneInfo(zone))


async def dispatch_through_worker(
    client: OutreachClient, redis: Redis, workers: Workers, tenant: UUID
) -> DispatchResult:
    async with workers.new("DispatchSettings", DISPATCH_CRON_ENABLED="false") as worker:
        await worker.wait_healthy(redis)
        job = await client.dispatch(tenant_id=tenant, batch_size=100)
        return await job.result(timeout=60)


async def paced_tenant(factory: Factory, now: datetime, closes_in: timedelta, **columns: Any) -> UUID:
    """A tenant whose window opened at local midnight and closes `closes_in` after `now`, with one phone
    and 10 due leads."""
    zone = noon_zone(now)
    closes = (local(now, zone) + closes_in).time().replace(microsecond=0)
    tenant = await factory.tenant(
        timezone=zone, send_window_start=time(0), send_window_end=closes, **EVERY_DAY, **columns
    )
    await factory.phone(tenant)
    await factory.leads(tenant, 10)
    return tenant


def gaps_of(result: DispatchResult) -> list[timedelta]:
    """The gaps between a dispatch's WhatsApp messages in the order of their scheduled times."""
    times = sorted(job.scheduled_at for job in result.jobs_created if job.scheduled_at is not None)
    return [later - earlier for earlier, later in itertools.pairwise(times)]


Paced = Callable[..., Awaitable[tuple[UUID, DispatchResult]]]


@pytest.fixture
def paced(
    factory: Factory, redis: Redis, client: OutreachClient, workers: Workers, clock: FixedClock
) -> Paced:
    """Makes a paced tenant (`paced_tenant`) and dispatches it through a worker process."""

    async def run(closes_in: timedelta, **columns: Any) -> tuple[UUID, DispatchResult]:
        tenant = await paced_tenant(factory, clock(), closes_in, **columns)
        return tenant, await dispatch_through_worker(client, redis, workers, tenant)

    return run


async def test_ten_leads_on_one_phone_are_spaced_by_the_min_gap_inside_the_window(
    paced: Paced, clock: FixedClock
) -> None:
    _, result = await paced(timedelta(hours=4), wa_min_gap_s=60, wa_jitter_s=30)

    gaps = gaps_of(result)
    assert result.dispatched_to_whatsapp == len(gaps) + 1 == 10
    assert all(timedelta(seconds=60) <= gap <= timedelta(seconds=90) for gap in gaps), gaps
    closes = clock() + timedelta(hours=4)
    assert all(clock() <= job.scheduled_at < closes for job in result.jobs_created if job.scheduled_at)


async def test_a_window_closing_in_5_minutes_takes_only_what_fits(paced: Paced, factory: Factory) -> None:
    tenant, result = await paced(timedelta(minutes=5), wa_min_gap_s=60, wa_jitter_s=0)

    # The worker starts a few seconds after the test's instant: slots at +0, 1, 2, 3 and 4 minutes of its
    # clock fit before the close, a sixth would not.
    assert (result.dispatched_to_whatsapp, result.skipped_window_full) == (5, 5)
    assert gaps_of(result) == [timedelta(minutes=1)] * 4
    waiting = [d for d in result.decisions if d.outcome == "SKIPPED_WINDOW_FULL"]
    assert {d.reason for d in waiting} == {"WINDOW_FULL"}
    assert all(d.job_id is None for d in waiting)
    for decision in waiting:
        journey = await factory.journey(tenant, decision.lead_id)
        assert journey["last_dispatched_at"] is None


async def test_a_phone_on_warm_up_day_3_takes_exactly_its_effective_limit(
    factory: Factory, redis: Redis, client: OutreachClient, workers: Workers, clock: FixedClock
) -> None:
    zone = noon_zone(clock())
    tenant = await factory.tenant(
        timezone=zone, send_window_start=time(0), send_window_end=time(0), wa_min_gap_s=0, wa_jitter_s=0,
        **EVERY_DAY,
    )  # fmt: skip
    await phone_on_warm_up_day_3(factory, tenant, local(clock(), zone).date())
    await factory.leads(tenant, 60)

    result = await dispatch_through_worker(client, redis, workers, tenant)

    assert result.dispatched_to_whatsapp == 40  # 20 + 10 x 2 on its third day, not its daily_limit of 200
    assert result.skipped_quota_exceeded == 20
