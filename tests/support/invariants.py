"""What must hold after any crash or rerun: counted from PostgreSQL and Redis, not from job results."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.names import ARQ_JOB_PREFIX, quota_key
from src.redis_io.codec import job_deserializer


@dataclass
class Ledger:
    jobs_per_lead: Counter[str] = field(default_factory=Counter)
    whatsapp_jobs_per_phone: Counter[str] = field(default_factory=Counter)
    counters: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    marked: set[str] = field(default_factory=set)
    outbox: int = 0  # jobs waiting in dispatch_outbox rows
    jobs: set[str] = field(default_factory=set)  # ids of the outreach jobs in Redis
    evidence: Counter[str] = field(default_factory=Counter)  # job id -> its outreach_messages rows

    @property
    def leads_with_two_jobs(self) -> list[str]:
        return [lead for lead, jobs in self.jobs_per_lead.items() if jobs > 1]

    @property
    def phones_over_limit_by_jobs(self) -> list[str]:
        return [p for p, jobs in self.whatsapp_jobs_per_phone.items() if jobs > self.limits[p]]

    @property
    def phones_over_limit_by_counter(self) -> list[str]:
        return [p for p, used in self.counters.items() if used > self.limits[p]]

    @property
    def marked_without_job(self) -> set[str]:
        return self.marked - set(self.jobs_per_lead)

    @property
    def jobs_without_mark(self) -> set[str]:
        return set(self.jobs_per_lead) - self.marked

    @property
    def jobs_without_evidence(self) -> set[str]:
        return self.jobs - set(self.evidence)

    @property
    def evidence_without_job(self) -> set[str]:
        return set(self.evidence) - self.jobs

    def violations(self) -> dict[str, Any]:
        return {
            "jobs without their evidence row": sorted(self.jobs_without_evidence),
            "evidence rows whose job never reached a queue": sorted(self.evidence_without_job),
            "jobs with two evidence rows": [job for job, rows in self.evidence.items() if rows > 1],
            "leads with two jobs": self.leads_with_two_jobs,
            "phones over daily_limit (jobs)": self.phones_over_limit_by_jobs,
            "phones over daily_limit (Redis counters)": self.phones_over_limit_by_counter,
            "leads marked dispatched without a job": sorted(self.marked_without_job),
            "jobs whose lead is not marked": sorted(self.jobs_without_mark),
            "jobs left in the outbox": self.outbox,
        }

    def assert_clean(self) -> None:
        problems = {name: value for name, value in self.violations().items() if value}
        assert not problems, problems

    def assert_each_lead_once(self, leads: int) -> None:
        """Clean, and exactly `leads` leads have their job: none lost, none sent twice."""
        self.assert_clean()
        assert len(self.jobs_per_lead) == leads, self.jobs_per_lead


async def ledger(engine: AsyncEngine, redis: Redis, day: date) -> Ledger:
    """Every outreach job in Redis (wa:* and email:* job keys) against the journeys, the evidence rows
    (outreach_messages) and the quota counters."""
    book = Ledger()
    async for key in redis.scan_iter(match=ARQ_JOB_PREFIX + "*", count=1000):
        job_id = key.decode()[len(ARQ_JOB_PREFIX) :]
        if job_id.startswith("routed:"):  # route's messages: evidence rows only
            book.jobs.add(job_id)
        if not job_id.startswith(("wa:", "email:")):
            continue
        raw = await redis.get(key)
        if raw is None:
            continue
        payload = job_deserializer(raw)["a"][0]
        book.jobs.add(job_id)
        book.jobs_per_lead[payload["leadId"]] += 1
        if job_id.startswith("wa:"):
            book.whatsapp_jobs_per_phone[payload["phoneId"]] += 1
    async with engine.connect() as conn:
        phones = (await conn.execute(text("SELECT id, daily_limit FROM wa_phone_numbers"))).all()
        marked = (
            await conn.execute(
                text("SELECT lead_id FROM gold_lead_journey WHERE last_dispatched_at IS NOT NULL")
            )
        ).all()
        book.outbox = (
            await conn.execute(text("SELECT coalesce(sum(job_count), 0) FROM dispatch_outbox"))
        ).scalar_one()
        evidence = (await conn.execute(text("SELECT job_id FROM outreach_messages"))).scalars().all()
    book.evidence = Counter(evidence)
    book.marked = {str(row[0]) for row in marked}
    for phone_id, limit in phones:
        book.limits[str(phone_id)] = limit
        book.counters[str(phone_id)] = int(await redis.get(quota_key(phone_id, day)) or 0)
    return book


def lead_ids(values: list[UUID]) -> set[str]:
    return {str(value) for value in values}


async def queued_outreach_jobs(redis: Redis) -> int:
    """How many jobs wait in the outreach queues (the per-phone WhatsApp and the e-mail queues)."""
    return sum([await redis.zcard(key) async for key in redis.scan_iter(match="q:*")])
