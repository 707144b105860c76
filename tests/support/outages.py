"""A workload for the tests that take a dependency away from a real worker (refused, cut, hung, limited):
a tenant with leads and phones, a feeder of all four jobs, and every result they end with."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import redis.exceptions
from redis.asyncio import Redis

from src.client import EnqueuedJob, OutreachClient
from src.names import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, ARQ_RETRY_PREFIX
from src.redis_io.codec import job_deserializer
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN


async def scenario(factory: Factory) -> tuple[UUID, list[UUID], list[UUID]]:
    """An always-open tenant with 3 phones of 60 sends a day and 120 due leads."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phones = [await factory.phone(tenant, daily_limit=60) for _ in range(3)]
    leads = await factory.leads(tenant, 120)
    return tenant, phones, leads


class Feeder:
    """Keeps enqueueing a mix of all four jobs, `burst` at a time; remembers every job Redis acknowledged."""

    def __init__(
        self, client: OutreachClient, tenant: UUID, phones: list[UUID], leads: list[UUID], burst: int = 1
    ) -> None:
        self.client, self.tenant, self.phones, self.leads = client, tenant, phones, leads
        self.burst = burst
        self.acknowledged: list[EnqueuedJob[Any]] = []
        self.refused = 0

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            try:
                self.acknowledged.append(await self._enqueue(n))
            except (redis.exceptions.RedisError, OSError):
                self.refused += 1
                await asyncio.sleep(0.2)
            n += 1
            if n % self.burst == 0:
                await asyncio.sleep(0.03 * self.burst)

    async def _enqueue(self, n: int) -> EnqueuedJob[Any]:
        lead = self.leads[n % len(self.leads)]
        match n % 4:
            case 0:
                return await self.client.select_channel(tenant_id=self.tenant, lead_id=lead)
            case 1:
                return await self.client.allocate_phone(tenant_id=self.tenant, lead_id=lead)
            case 2:
                return await self.client.route(
                    tenant_id=self.tenant,
                    lead_id=lead,
                    phone_id=self.phones[n % len(self.phones)],
                    message_type="FOLLOWUP",
                    payload={"n": n},
                )
            case _:
                return await self.client.dispatch(tenant_id=self.tenant, batch_size=5)


async def all_results(
    jobs: list[EnqueuedJob[Any]], redis_client: Redis, timeout: float
) -> list[dict[str, Any]]:
    """The stored result of every job, waiting up to `timeout` for the last ones."""
    deadline = time.monotonic() + timeout
    pending = {job.job_id for job in jobs}
    results: dict[str, dict[str, Any]] = {}
    while pending:
        for job_id in list(pending):
            raw = await redis_client.get(ARQ_RESULT_PREFIX + job_id)
            if raw is not None:
                results[job_id] = job_deserializer(raw)
                pending.discard(job_id)
        if pending:
            if time.monotonic() >= deadline:
                missing = [job for job in jobs if job.job_id in pending]
                seen = [await _whereabouts(redis_client, job) for job in missing[:5]]
                raise AssertionError(f"{len(pending)} acknowledged jobs never completed: " + "; ".join(seen))
            await asyncio.sleep(0.5)
    return [results[job.job_id] for job in jobs]


async def _whereabouts(redis_client: Redis, job: EnqueuedJob[Any]) -> str:
    """What Redis holds of a job that has no result: for the failure message, to tell a job lost from
    one still waiting, running or retrying."""
    job_id = job.job_id
    async with redis_client.pipeline(transaction=False) as pipe:
        pipe.exists(ARQ_JOB_PREFIX + job_id)
        pipe.zscore(job.queue, job_id)
        pipe.pttl(ARQ_IN_PROGRESS_PREFIX + job_id)
        pipe.get(ARQ_RETRY_PREFIX + job_id)
        stored, score, in_progress_ms, tries = await pipe.execute()
    tries = tries.decode() if tries else None
    return (
        f"{job_id} (job key {'present' if stored else 'absent'}, queued with score {score}, "
        f"in-progress key TTL {in_progress_ms} ms, tries {tries})"
    )
