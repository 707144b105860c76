"""The load of the failover scenario (tests/support/failover.py): producers of dispatch and route jobs, a
watch on what the route jobs report, and a sender that takes the messages off their queues, all through
the sentinels, so that they follow the failover as the workers do."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

import redis.exceptions
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import EnqueuedJob, OutreachClient
from src.names import (
    ARQ_JOB_PREFIX,
    ARQ_RESULT_PREFIX,
    EMAIL_COLD_QUEUE,
    EMAIL_WARM_QUEUE,
    Function,
    whatsapp_queue,
)
from src.redis_io.codec import job_deserializer
from tests.support.workers import WorkerProcess

if TYPE_CHECKING:
    from tests.support.failover import Shape

FAULTS = (redis.exceptions.RedisError, OSError)
BACK = re.compile(r"Redis reachable again")


class Traffic:
    """Dispatch and route jobs at steady rates; every job whose enqueue Redis acknowledged is remembered,
    and so is every routed message a route job reported (a result that says `routed`, read back)."""

    def __init__(
        self,
        client: OutreachClient,
        redis: Redis,
        tenant: UUID,
        phones: list[UUID],
        leads: list[UUID],
        shape: Shape,
    ) -> None:
        self.client, self.redis = client, redis
        self.tenant, self.phones, self.leads = tenant, phones, leads
        self.shape = shape
        self.acknowledged: list[EnqueuedJob[Any]] = []
        self.refused = 0
        self.routed: dict[str, str] = {}  # route job id -> the id of the message it reported routed
        self.route_results: dict[str, dict[str, Any]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        shape = self.shape
        every = 1.0 / (shape.dispatches_per_s + shape.routes_per_s)
        dispatch_share = shape.dispatches_per_s / (shape.dispatches_per_s + shape.routes_per_s)
        n, owed, due = 0, 0.0, time.monotonic()
        while not stop.is_set():
            owed += dispatch_share
            dispatch = owed >= 1.0
            owed -= dispatch
            try:
                self.acknowledged.append(await self._enqueue(n, dispatch=dispatch))
            except FAULTS:
                self.refused += 1
            n += 1
            # Steady, without a burst to catch up after an outage.
            due = max(due + every, time.monotonic() - 1.0)
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _enqueue(self, n: int, *, dispatch: bool) -> EnqueuedJob[Any]:
        if dispatch:
            return await self.client.dispatch(tenant_id=self.tenant, batch_size=self.shape.batch)
        return await self.client.route(
            tenant_id=self.tenant,
            lead_id=self.leads[n % len(self.leads)],
            phone_id=self.phones[n % len(self.phones)],
            message_type="FOLLOWUP",
            payload={"n": n},
        )

    async def watch_routes(self, stop: asyncio.Event) -> None:
        """Read the route jobs' results as they come, as their callers would: a message reported routed
        is one its caller relies on."""
        while not stop.is_set():
            with contextlib.suppress(FAULTS):
                await self.read_route_results()
            await asyncio.sleep(0.2)
        await self.read_route_results()

    async def read_route_results(self) -> None:
        waiting = [
            job.job_id
            for job in self.acknowledged
            if job.function is Function.ROUTE and job.job_id not in self.route_results
        ]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start : start + 500]
            raws = await self.redis.mget([ARQ_RESULT_PREFIX + job_id for job_id in chunk])
            for job_id, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    continue
                result = self.route_results[job_id] = dict(job_deserializer(raw))
                if result["s"] and result["r"]["routed"]:
                    self.routed[job_id] = result["r"]["jobId"]


class Sender:
    """What the downstream senders do: take each due message off its queue, send it, and mark it done as
    arq does (job key deleted, a result kept an hour). A message sent stays sent, whatever Redis loses
    afterwards: `sent` is kept here, outside Redis."""

    def __init__(self, redis: Redis, queues: list[str]) -> None:
        self.redis = redis
        self.queues = queues
        self.sent: dict[str, dict[str, Any]] = {}  # job id -> its payload

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for queue in self.queues:
                with contextlib.suppress(FAULTS):
                    await self._send_due(queue)
            await asyncio.sleep(0.1)

    async def _send_due(self, queue: str) -> None:
        job_ids = await self.redis.zrangebyscore(queue, "-inf", time.time() * 1000, start=0, num=500)
        if not job_ids:
            return
        bodies = await self.redis.mget([ARQ_JOB_PREFIX + job_id.decode() for job_id in job_ids])
        async with self.redis.pipeline(transaction=True) as done:
            for raw_id, body in zip(job_ids, bodies, strict=True):
                job_id = raw_id.decode()
                if body is not None:
                    self.sent[job_id] = job_deserializer(body)["a"][0]
                    done.delete(ARQ_JOB_PREFIX + job_id)
                    done.set(ARQ_RESULT_PREFIX + job_id, b"sent", px=3_600_000)
                done.zrem(queue, raw_id)
            await done.execute()


async def output_queues(engine: AsyncEngine) -> list[str]:
    """Every queue the senders read: each phone's two and the e-mail queues."""
    async with engine.connect() as conn:
        slots = [row[0] for row in await conn.exec_driver_sql("SELECT queue_slot FROM wa_phone_numbers")]
    phone_queues = [whatsapp_queue(slot, followup=followup) for slot in slots for followup in (False, True)]
    return [*phone_queues, EMAIL_COLD_QUEUE, EMAIL_WARM_QUEUE]


async def follow_times(
    processes: dict[str, WorkerProcess], since: float, timeout: float = 60
) -> dict[str, float]:
    """Per process, seconds from `since` until it logged that Redis answers again."""
    before = {name: len(BACK.findall(process.output())) for name, process in processes.items()}
    followed: dict[str, float] = {}
    while len(followed) < len(processes):
        for name, process in processes.items():
            if name not in followed and len(BACK.findall(process.output())) > before[name]:
                followed[name] = time.monotonic() - since
        assert time.monotonic() - since < timeout, (
            f"not back after {timeout}s: {set(processes) - set(followed)}"
        )
        await asyncio.sleep(0.1)
    return followed
