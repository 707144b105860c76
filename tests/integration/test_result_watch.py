"""Callers awaiting results at once share the client's reads (src/redis_io/result_watch.py).

Results are written here as an arq worker writes them (arq's own `serialize_result`, the service's
serializer); tests/e2e/test_worker.py awaits results that a real worker stores.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.exceptions
from arq.constants import result_key_prefix
from arq.jobs import serialize_result
from redis.asyncio import Redis

from src.client import EnqueuedJob, JobFailed, OutreachClient, ResultTimeout
from src.names import QUEUE_OF, Function
from src.redis_io.codec import job_serializer
from tests.support.servers import RedisServer
from tests.support.services import TEST_REDIS_URL, command_calls

WAITERS = 200
SELECTOR = QUEUE_OF[Function.SELECT_CHANNEL].value


def awaited(client: OutreachClient, job_id: str) -> EnqueuedJob[dict[str, object]]:
    """A handle on a job id, as enqueue returns it, parsed into a plain dict."""
    return EnqueuedJob(job_id, SELECTOR, Function.SELECT_CHANNEL, True, dict, client.redis, client.results)


async def store_result(redis: Redis, job_id: str, result: object, *, success: bool = True) -> None:
    now_ms = int(time.time() * 1000)
    raw = serialize_result(
        "select_channel",
        ({},),
        {},
        1,
        now_ms,
        success,
        result,
        now_ms,
        now_ms,
        job_id,
        SELECTOR,
        job_id,
        serializer=job_serializer,
    )
    assert raw is not None
    await redis.set(result_key_prefix + job_id, raw, px=60_000)


async def test_callers_awaiting_at_once_share_one_read_a_tick_not_one_each(
    client: OutreachClient, redis: Redis
) -> None:
    await redis.config_resetstat()
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(awaited(client, f"never-{n}").result(timeout=0.5, poll_delay=0.01) for n in range(WAITERS)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    calls = await command_calls(redis)

    assert all(isinstance(outcome, ResultTimeout) for outcome in outcomes)
    # Each caller reads its key once itself; then one MGET a tick serves all of them. A read per caller
    # per tick, as before, was 200 x 50 = 10,000 GETs. (The counts are the whole server's: a few GETs
    # of anything else on it are allowed for.)
    assert WAITERS <= calls.get("get", 0) <= WAITERS + 10
    assert 10 <= calls.get("mget", 0) <= elapsed / 0.01 + 5
    assert client.results.waiting == 0


async def test_each_caller_gets_its_own_job_s_result_when_it_is_stored(
    client: OutreachClient, redis: Redis
) -> None:
    jobs = [awaited(client, f"job-{n}") for n in range(50)]
    waiting = [asyncio.create_task(job.result(timeout=10)) for job in jobs]
    second_caller = asyncio.create_task(jobs[7].result(timeout=10))
    failing = asyncio.create_task(awaited(client, "job-bad").result(timeout=10))
    await asyncio.sleep(0.05)
    assert client.results.waiting == 52

    for n in reversed(range(50)):
        await store_result(redis, f"job-{n}", {"n": n})
    await store_result(redis, "job-bad", {"error": "INVALID_INPUT", "fields": ["leadId"]}, success=False)

    assert [await task for task in waiting] == [{"n": n} for n in range(50)]
    assert await second_caller == {"n": 7}
    with pytest.raises(JobFailed) as failed:
        await failing
    assert failed.value.error["fields"] == ["leadId"]
    assert client.results.waiting == 0


async def test_a_caller_that_gives_up_leaves_the_others_waiting(client: OutreachClient, redis: Redis) -> None:
    patient = asyncio.create_task(awaited(client, "shared").result(timeout=10))
    impatient = asyncio.create_task(awaited(client, "shared").result(timeout=0.1))
    cancelled = asyncio.create_task(awaited(client, "shared").result(timeout=10))
    await asyncio.sleep(0.02)
    cancelled.cancel()

    with pytest.raises(ResultTimeout):
        await impatient
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert client.results.waiting == 1

    await store_result(redis, "shared", {"ok": True})
    assert await patient == {"ok": True}
    assert client.results.waiting == 0


async def test_a_result_stored_before_the_caller_asks_is_read_at_once(
    client: OutreachClient, redis: Redis
) -> None:
    await store_result(redis, "done", {"ok": True})
    await redis.config_resetstat()

    assert await awaited(client, "done").result(timeout=1, poll_delay=10) == {"ok": True}
    calls = await command_calls(redis)
    assert (calls.get("get", 0), calls.get("mget", 0)) == (1, 0)


async def test_a_redis_fault_reaches_every_waiting_caller_and_the_next_wait_reads_again(
    own_redis: RedisServer,
) -> None:
    async with OutreachClient.connect(own_redis.url) as client:
        waiting = [asyncio.create_task(awaited(client, f"lost-{n}").result(timeout=10)) for n in range(20)]
        await asyncio.sleep(0.05)
        assert client.results.waiting == 20
        own_redis.stop()

        outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
        assert all(isinstance(o, (redis.exceptions.ConnectionError, OSError)) for o in outcomes), outcomes
        assert client.results.waiting == 0

        own_redis.start()
        admin = Redis.from_url(own_redis.url)
        try:
            again = asyncio.create_task(awaited(client, "after").result(timeout=10))
            await asyncio.sleep(0.05)
            await store_result(admin, "after", {"ok": True})
            assert await again == {"ok": True}
        finally:
            await admin.aclose()


async def test_a_closed_client_fails_its_waiting_callers(redis: Redis) -> None:
    async with OutreachClient.connect(TEST_REDIS_URL) as client:
        waiting = asyncio.create_task(awaited(client, "forever").result(timeout=10))
        await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="client is closed"):
        await asyncio.wait_for(waiting, 5)
