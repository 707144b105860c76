"""An enqueue whose connection dies says so: it never reports a job it did not write as a duplicate.

arq's `enqueue_job` watches the job's key, and redis-py turns a connection lost during a watched
transaction into a WatchError, which arq takes for "a job with this id appeared meanwhile": it returns
None, as for a duplicate. A caller told `created=False` believes the job exists and never enqueues it
again, while nothing was written. The Redis outage test lost a job that way, about one run in ten.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions
from redis.asyncio import Redis

from src.client import OutreachClient
from src.names import ARQ_JOB_PREFIX
from tests.support.servers import RedisServer

LEAD = "1b6f8e90-52c4-4c7e-8f0e-5c1d2b3a4f11"
TENANT = "8f0e1d5c-3c7a-4b8e-9a57-0a4f6c2b1e11"


async def test_an_enqueue_cut_before_redis_wrote_the_job_raises_and_writes_nothing(
    own_redis: RedisServer,
) -> None:
    admin = Redis.from_url(own_redis.url)
    try:
        async with OutreachClient.connect(own_redis.url) as client:
            await client.redis.ping()
            # Writes wait (reads do not) while the client's enqueue reaches Redis; then its connection is
            # closed under it, before the job is written.
            await admin.execute_command("CLIENT", "PAUSE", "2000", "WRITE")
            enqueue = asyncio.create_task(
                client.select_channel(tenant_id=TENANT, lead_id=LEAD, job_id="cut-enqueue")
            )
            await asyncio.sleep(0.3)
            assert not enqueue.done(), "the enqueue's write should be waiting on the paused server"
            killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert killed >= 1
            await admin.execute_command("CLIENT", "UNPAUSE")

            with pytest.raises((redis.exceptions.ConnectionError, OSError)):
                await enqueue
            assert not await admin.exists(ARQ_JOB_PREFIX + "cut-enqueue")

            # The caller enqueues again, with the same id: this time the job is written, once.
            again = await client.select_channel(tenant_id=TENANT, lead_id=LEAD, job_id="cut-enqueue")
            assert again.created
            assert await admin.exists(ARQ_JOB_PREFIX + "cut-enqueue")
            duplicate = await client.select_channel(tenant_id=TENANT, lead_id=LEAD, job_id="cut-enqueue")
            assert not duplicate.created
    finally:
        await admin.aclose()
