"""What arq keeps in Redis, read for the ops tool: queue depths, health keys, the jobs on a queue.

An arq queue is a sorted set of job ids scored by the time they may run. A job is deferred while its score
is in the future, ready once it is due, and in progress while `arq:in-progress:{id}` exists (arq keeps a
running job in the sorted set until it finishes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from src.names import ALL_QUEUES_HEALTH_KEY, ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX, Queue, health_key
from src.redis_io.codec import loads

# SCAN batch for the in-progress keys; their number is bounded by the workers' concurrency.
_SCAN_COUNT = 10_000


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    deferred: int
    queued: int
    in_progress: int

    @property
    def total(self) -> int:
        return self.deferred + self.queued + self.in_progress


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    name: str
    key: str
    up: bool
    expires_in_s: float | None
    report: str | None


@dataclass(frozen=True, slots=True)
class QueuedJob:
    job_id: str
    function: str | None
    payload: dict[str, Any]


async def in_progress_ids(redis: Redis) -> list[str]:
    prefix = ARQ_IN_PROGRESS_PREFIX
    return [
        as_text(key)[len(prefix) :] async for key in redis.scan_iter(match=prefix + "*", count=_SCAN_COUNT)
    ]


async def queue_depths(redis: Redis, queues: Sequence[str], *, now_ms: int) -> list[QueueDepth]:
    """Deferred, queued and in-progress jobs of each queue, read in one pipeline."""
    running = await in_progress_ids(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zcount(queue, f"({now_ms}", "+inf")
            pipe.zcount(queue, "-inf", now_ms)
            if running:
                pipe.zmscore(queue, running)
        replies = await pipe.execute()
    step = 3 if running else 2
    depths = []
    for n, queue in enumerate(queues):
        deferred, ready = int(replies[step * n]), int(replies[step * n + 1])
        scores = replies[step * n + 2] if running else []
        busy = sum(score is not None for score in scores)
        busy_due = sum(score is not None and score <= now_ms for score in scores)
        depths.append(QueueDepth(queue, deferred - (busy - busy_due), ready - busy_due, busy))
    return depths


async def worker_health(redis: Redis) -> list[WorkerHealth]:
    """The health key of the all-queues process and of each queue (written by arq every interval)."""
    keys = [("all four queues (src.worker.Settings)", ALL_QUEUES_HEALTH_KEY)]
    keys += [(queue.value, health_key(queue)) for queue in Queue]
    async with redis.pipeline(transaction=False) as pipe:
        for _, key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    health = []
    for n, (name, key) in enumerate(keys):
        value, ttl_ms = replies[2 * n], int(replies[2 * n + 1])
        up = value is not None
        health.append(
            WorkerHealth(
                name=name,
                key=key,
                up=up,
                expires_in_s=round(ttl_ms / 1000, 1) if up and ttl_ms >= 0 else None,
                report=as_text(value) if up else None,
            )
        )
    return health


async def queued_jobs(redis: Redis, queue: str, *, limit: int = 1000) -> list[QueuedJob]:
    """The first `limit` jobs of a queue with their function and payload (arq's JSON job format)."""
    job_ids = [as_text(member) for member in await redis.zrange(queue, 0, limit - 1)]
    if not job_ids:
        return []
    raw = await redis.mget([ARQ_JOB_PREFIX + job_id for job_id in job_ids])
    jobs = []
    for job_id, data in zip(job_ids, raw, strict=True):
        stored = loads(data) if data else {}
        args = stored.get("a") or [{}]
        payload = args[0] if isinstance(args[0], dict) else {"args": args}
        jobs.append(QueuedJob(job_id, stored.get("f"), payload))
    return jobs


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
