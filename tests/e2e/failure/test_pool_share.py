"""Dispatches holding PostgreSQL connections leave the per-lead jobs of the same process some of their own.

In `arq src.worker.Settings` the four queues share one pool of DB_POOL_SIZE connections. A dispatch holds
its connection for its whole batch (the transaction, the Redis reservation inside it, the enqueue after
it), a per-lead job for a statement. With DISPATCH_CONCURRENCY at the pool's size, dispatches slowed by
a slow Redis could hold every connection while per-lead jobs waited out their budgets and retried.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers, lines

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

POOL_SIZE = 4
PAUSE_S = 6.0
PAUSING = "chaos: pausing"


async def test_dispatches_holding_connections_leave_per_lead_jobs_a_share_of_the_pool(
    factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenants = [await factory.tenant(**ALWAYS_OPEN) for _ in range(POOL_SIZE)]
    for n, tenant in enumerate(tenants):
        await factory.phone(tenant, phone_number=f"+4072100031{n}")
        await factory.leads(tenant, 2)
    lead = await factory.lead(tenants[0])

    worker = workers.new(
        "Settings",
        DB_POOL_SIZE=str(POOL_SIZE),
        DISPATCH_CONCURRENCY=str(POOL_SIZE),
        # Each dispatch holds its connection PAUSE_S inside its transaction, as behind a slow Redis.
        CHAOS_PAUSE_AT="after_reserve",
        CHAOS_PAUSE_S=str(PAUSE_S),
        DISPATCH_CRON_ENABLED="false",
    )
    async with worker:
        await worker.wait_healthy(redis)
        dispatches = [await client.dispatch(tenant_id=tenant, batch_size=10) for tenant in tenants]
        deadline = time.monotonic() + 20
        while lines(worker.output(), PAUSING) < POOL_SIZE - 1:
            assert time.monotonic() < deadline, worker.output()
            await asyncio.sleep(0.05)
        paused_at = time.monotonic()
        await asyncio.sleep(0.5)  # time for the last dispatch to reach for the last connection
        # The dispatch queue's share of a pool of 4 is 3: the fourth dispatch waits for one of them.
        assert lines(worker.output(), PAUSING) == POOL_SIZE - 1, worker.output()

        selection = await client.select_channel(tenant_id=tenants[0], lead_id=lead)
        selected = await selection.result(timeout=PAUSE_S)
        answered_after = time.monotonic() - paused_at
        state = await client.job_state(selection.job_id)

        results = [await job.result(timeout=60) for job in dispatches]
        output = worker.output()

    assert selected.selected_channel == "WHATSAPP"
    # On its first try, while the dispatches still held their connections: it waited for none of them.
    assert state.job_try == 1, output
    assert answered_after < PAUSE_S, output
    # Every dispatch went through, the one that waited for a place too (the first tenant has `lead` besides).
    assert [r.dispatched_to_whatsapp for r in results] == [3] + [2] * (POOL_SIZE - 1)
    assert lines(output, PAUSING) == POOL_SIZE
