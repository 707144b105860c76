"""The bulk enqueue script writes what a stock arq Worker of the pinned version consumes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.asyncio import Redis

from src.domain.windows import utc_iso
from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.job_writer import (
    ISO_LUA,
    JOB_EXPIRES_MS,
    JobWriter,
    OutgoingJob,
    arq_job_bytes,
    encode_batch,
)
from src.redis_io.replicas import ReplicaAcks
from src.runtime.clock import epoch_us
from src.runtime.deps import Deps
from tests.support.services import TEST_REDIS_URL

NOW_MS = 1_764_064_800_000


def stock_worker(function: Callable[..., Awaitable[Any]], queue: str) -> Worker:
    """arq's own Worker of the pinned version, in burst mode, as a sender would run it."""
    return Worker(
        functions=[func(function, name="send-whatsapp-initial")],
        queue_name=queue,
        redis_settings=RedisSettings.from_dsn(TEST_REDIS_URL),
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )


async def test_a_stock_arq_worker_consumes_what_the_script_wrote(deps: Deps, redis: Redis) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def send_whatsapp_initial(ctx: dict[str, Any], payload: dict[str, Any]) -> str:
        received.append((ctx["job_id"], payload))
        return "sent"

    jobs = [
        OutgoingJob(f"wa:{n}", "q:wa:phone_07", "send-whatsapp-initial", {"leadId": f"lead-{n}", "step": n})
        for n in range(3)
    ]
    assert await deps.job_writer.enqueue(jobs, now_ms=NOW_MS) == [True, True, True]

    worker = stock_worker(send_whatsapp_initial, "q:wa:phone_07")
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
    assert await deps.job_writer.enqueue(
        [first, OutgoingJob("done", "q:email:cold", "send-email-cold", {})], now_ms=NOW_MS
    ) == [
        True,
        False,
    ]
    changed = OutgoingJob("fresh", "q:email:cold", "send-email-cold", {"n": 2})
    assert await deps.job_writer.enqueue([changed], now_ms=NOW_MS + 5) == [False]
    assert job_deserializer(await redis.get(ARQ_JOB_PREFIX + "fresh"))["a"] == [{"n": 1}]
    assert await redis.zrange("q:email:cold", 0, -1, withscores=True) == [(b"fresh", float(NOW_MS))]
    assert 86_000 < await redis.ttl(ARQ_JOB_PREFIX + "fresh") <= 86_400


async def test_same_semantics_as_arq_enqueue_job(deps: Deps, redis: Redis) -> None:
    """arq's own enqueue_job and the script refuse each other's ids."""
    from arq.connections import create_pool

    pool = await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL), job_serializer=job_serializer)
    try:
        assert await pool.enqueue_job("send-email-warm", {}, _job_id="by-arq", _queue_name="q:email:warm")
        assert await deps.job_writer.enqueue(
            [OutgoingJob("by-arq", "q:email:warm", "send-email-warm", {})], now_ms=NOW_MS
        ) == [False]
        await deps.job_writer.enqueue(
            [OutgoingJob("by-script", "q:email:warm", "send-email-warm", {})], now_ms=NOW_MS
        )
        assert (
            await pool.enqueue_job("send-email-warm", {}, _job_id="by-script", _queue_name="q:email:warm")
            is None
        )
    finally:
        await pool.aclose()


async def test_a_deferred_job_expires_a_day_after_it_is_due_as_arq_s_own(deps: Deps, redis: Redis) -> None:
    """arq counts a job's expiry from its score (enqueue_job: score - enqueue_time + expires_extra_ms)."""
    three_days = 3 * 86_400_000
    due = OutgoingJob("monday", "q:wa:phone_07", "send-whatsapp-initial", {}, due_ms=NOW_MS + three_days)
    now = OutgoingJob("now", "q:wa:phone_07", "send-whatsapp-initial", {})
    past = OutgoingJob("late", "q:wa:phone_07", "send-whatsapp-initial", {}, due_ms=NOW_MS - three_days)

    assert await deps.job_writer.enqueue([due, now, past], now_ms=NOW_MS) == [True, True, True]

    scores = dict(await redis.zrange("q:wa:phone_07", 0, -1, withscores=True))
    assert scores == {b"monday": NOW_MS + three_days, b"now": NOW_MS, b"late": NOW_MS - three_days}
    assert (
        three_days + JOB_EXPIRES_MS - 5_000
        < await redis.pttl(ARQ_JOB_PREFIX + "monday")
        <= three_days + JOB_EXPIRES_MS
    )
    for expiring_in_a_day in ("now", "late"):
        assert JOB_EXPIRES_MS - 5_000 < await redis.pttl(ARQ_JOB_PREFIX + expiring_in_a_day) <= JOB_EXPIRES_MS


async def test_a_batch_carries_a_score_per_job_defaulting_to_the_enqueue_time(
    deps: Deps, redis: Redis
) -> None:
    body = arq_job_bytes("send-email-cold", {}, NOW_MS)
    batch = encode_batch([("a", "q:email:cold", body), ("b", "q:email:cold", body, NOW_MS + 60_000)])

    assert await deps.job_writer.enqueue_batch(batch, now_ms=NOW_MS) == [True, True]

    assert await redis.zrange("q:email:cold", 0, -1, withscores=True) == [
        (b"a", NOW_MS),
        (b"b", NOW_MS + 60_000),
    ]
    assert 60_000 + JOB_EXPIRES_MS - 5_000 < await redis.pttl(ARQ_JOB_PREFIX + "b") <= 60_000 + JOB_EXPIRES_MS


async def test_a_stock_arq_worker_runs_a_deferred_job_at_its_time_not_before_and_not_expired(
    deps: Deps, redis: Redis
) -> None:
    """A job deferred past its writer's expiry margin: a stock worker leaves it until it is due, then runs it
    (had its expiry counted from the enqueue time, it would have gone before it was due: 'job expired')."""
    started: dict[str, float] = {}

    async def send_whatsapp_initial(ctx: dict[str, Any], payload: dict[str, Any]) -> str:
        started[ctx["job_id"]] = time.time()
        return "sent"

    writer = JobWriter(redis, acks=ReplicaAcks(redis, min_acks=0, timeout_s=0.5), expires_extra_ms=500)
    enqueued_ms = int(time.time() * 1000)
    due_ms = enqueued_ms + 1_500
    jobs = [
        OutgoingJob("at-once", "q:wa:phone_08", "send-whatsapp-initial", {}),
        OutgoingJob("deferred", "q:wa:phone_08", "send-whatsapp-initial", {}, due_ms=due_ms),
    ]
    assert await writer.enqueue(jobs, now_ms=enqueued_ms) == [True, True]

    worker = stock_worker(send_whatsapp_initial, "q:wa:phone_08")
    try:
        await asyncio.wait_for(worker.async_run(), timeout=10)  # burst: until the queue is empty
    finally:
        await worker.close()

    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    assert started["at-once"] * 1000 < due_ms <= started["deferred"] * 1000


async def test_the_script_writes_an_instant_exactly_as_the_results_do(redis: Redis) -> None:
    """The reservation script writes a routed message's scheduledAt itself (ISO_LUA): the same text as
    utc_iso, for leap days, century years, year ends, whole seconds and every digit of the microseconds."""
    rng = random.Random(20261130)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    moments = [
        datetime(2000, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2100, 2, 28, 23, 59, 59, tzinfo=UTC),
        datetime(2100, 3, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 0, 100000, tzinfo=UTC),
        epoch,
    ]
    span = (datetime(2200, 1, 1, tzinfo=UTC) - epoch) // timedelta(microseconds=1)
    moments += [epoch + timedelta(microseconds=rng.randrange(span)) for _ in range(3000)]
    moments += [epoch + timedelta(seconds=rng.randrange(span // 1_000_000)) for _ in range(500)]
    script = redis.register_script(
        ISO_LUA
        + "local out = {}\nfor n, us in ipairs(cjson.decode(ARGV[1])) do out[n] = iso(us) end\nreturn out"
    )

    written = await script(keys=[], args=[orjson.dumps([epoch_us(m) for m in moments])])

    assert [text.decode() for text in written] == [utc_iso(m) for m in moments]
