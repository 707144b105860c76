"""REDIS_URL=redis+sentinel://... reaches the master through a real Redis Sentinel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from src.jobs.allocate_phone import allocate_phone
from src.runtime.clock import FixedClock
from src.runtime.deps import build_deps, close_deps
from tests.support.factories import Factory
from tests.support.jobs import job_ctx
from tests.support.servers import SentinelServer
from tests.support.services import TEST_REDIS_URL, make_settings
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers


@pytest.fixture
def sentinel_url() -> Iterator[str]:
    sentinel = SentinelServer(TEST_REDIS_URL)
    try:
        sentinel.start()
        yield sentinel.url
    finally:
        sentinel.close()


async def test_jobs_and_the_ops_client_work_through_sentinel(
    sentinel_url: str, factory: Factory, redis: Redis, clock: FixedClock, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)
    deps = await build_deps(make_settings(redis_url=sentinel_url), clock=clock)
    try:
        result = await allocate_phone(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})
    finally:
        await close_deps(deps)
    assert result["allocatedPhoneId"] == str(phone)

    async with OutreachClient.connect(sentinel_url) as client:
        job = await client.select_channel(tenant_id=tenant, lead_id=lead)
        assert job.created
        async with workers.new("SelectorSettings", REDIS_URL=sentinel_url) as worker:
            await worker.wait_healthy(redis)
            selected = await job.result(timeout=10)
    assert selected.selected_channel == "WHATSAPP"
