"""The bulk enqueue script writes what a stock arq Worker of the pinned version consumes."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.asyncio import Redis

from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.job_writer import OutgoingJob
from src.runtime.deps import Deps
from tests.support.services import TEST_REDIS_URL

NOW_MS = 1_764_064_800_000


async def test_a_stock_arq_worker_consumes_what_the_script_wrote(deps: Deps, redis: Redis) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def send_whatsapp_initial(ctx: dict[str, Any], payload: dict[str, Any]) -> str:
        received.append((ctx["job_id"], payload))
        return "sent"

    jobs = [
        OutgoingJob(f"wa:{n}", "q:wa:phone_07", "send-whatsapp-initial", {"leadId": f"lead-{n}", "step": n})
        for n in range(3)
    ]
    assert await deps.outbound.enqueue(jobs, now_ms=NOW_MS) == [True, True, True]

    worker = Worker(
        functions=[func(send_whatsapp_initial, name="send-whatsapp-initial")],
        queue_name="q:wa:phone_07",
        redis_settings=RedisSettings.from_dsn(TEST_REDIS_URL),
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert sorted(received) == [(f"wa:{n}", {"leadId": f"lead-{n}", "step": n}) for n in range(3)]
    assert worker.jobs_complete == 3
    assert worker.jobs_failed == 0
    result = job_deserializer(await redis.get(ARQ_RESULT_PREFIX + "wa:0"))
    assert (result["s"], result["r"], result["t"]) == (True, "sent", 1)


async def test_an_id_whose_job_or_result_exists_is_skipped(deps: Deps, redis: Redis) -> None:
    await redis.set(ARQ_RESULT_PREFIX + "done", b"{}")
    first = OutgoingJob("fresh", "q:email:cold", "send-email-cold", {"n": 1})
    assert await deps.outbound.enqueue(
        [first, OutgoingJob("done", "q:email:cold", "send-email-cold", {})], now_ms=NOW_MS
    ) == [
        True,
        False,
    ]
    changed = OutgoingJob("fresh", "q:email:cold", "send-email-cold", {"n": 2})
    assert await deps.outbound.enqueue([changed], now_ms=NOW_MS + 5) == [False]
    assert job_deserializer(await redis.get(ARQ_JOB_PREFIX + "fresh"))["a"] == [{"n": 1}]
    assert await redis.zrange("q:email:cold", 0, -1, withscores=True) == [(b"fresh", float(NOW_MS))]
    assert 86_000 < await redis.ttl(ARQ_JOB_PREFIX + "fresh") <= 86_400


async def test_same_semantics_as_arq_enqueue_job(deps: Deps, redis: Redis) -> None:
    """arq's own enqueue_job and the script refuse each other's ids."""
    from arq.connections import create_pool

    pool = await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL), job_serializer=job_serializer)
    try:
        assert await pool.enqueue_job("send-email-warm", {}, _job_id="by-arq", _queue_name="q:email:warm")
        assert await deps.outbound.enqueue(
            [OutgoingJob("by-arq", "q:email:warm", "send-email-warm", {})], now_ms=NOW_MS
        ) == [False]
        await deps.outbound.enqueue(
            [OutgoingJob("by-script", "q:email:warm", "send-email-warm", {})], now_ms=NOW_MS
        )
        assert (
            await pool.enqueue_job("send-email-warm", {}, _job_id="by-script", _queue_name="q:email:warm")
            is None
        )
    finally:
        await pool.aclose()
