"""What must hold after any crash or rerun: counted from PostgreSQL and Redis, not from job results."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.names import ARQ_JOB_PREFIX, pace_slots_key, quota_key
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
    # Sender safety (issue 10): each WhatsApp job's scheduled time by phone, each phone's tenant minimum
    # gap, each tenant's recipients and budget, and the slot each job's reservation holds.
    slots_per_phone: dict[str, list[datetime]] = field(default_factory=dict)
    min_gap_s: dict[str, int] = field(default_factory=dict)
    recipients: dict[str, set[str]] = field(default_factory=dict)  # tenant -> E.164 numbers messaged
    portfolio_limits: dict[str, int | None] = field(default_factory=dict)
    slot_mismatches: list[str] = field(default_factory=list)  # jobs scheduled otherwise than reserved

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

    @property
    def phones_paced_too_close(self) -> list[str]:
        """Phones with two WhatsApp messages scheduled closer than their tenant's wa_min_gap_s."""
        close = []
        for phone, slots in self.slots_per_phone.items():
            ordered = sorted(slots)
            gap = timedelta(seconds=self.min_gap_s[phone])
            if any(later - earlier < gap for earlier, later in itertools.pairwise(ordered)):
                close.append(phone)
        return close

    @property
    def tenants_over_portfolio_budget(self) -> list[str]:
        return [
            tenant
            for tenant, numbers in self.recipients.items()
            if (limit := self.portfolio_limits.get(tenant)) is not None and len(numbers) > limit
        ]

    def violations(self) -> dict[str, Any]:
        return {
            "phones with two messages closer than wa_min_gap_s": self.phones_paced_too_close,
            "tenants over their portfolio budget": self.tenants_over_portfolio_budget,
            "jobs scheduled at another time than their reservation's": self.slot_mismatches,
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
            await _scheduled(book, redis, day, job_id, payload)
    async with engine.connect() as conn:
        phones = (
            await conn.execute(
                text(
                    "SELECT p.id, p.daily_limit, t.wa_min_gap_s FROM wa_phone_numbers p "
                    "JOIN tenants t ON t.id = p.tenant_id"
                )
            )
        ).all()
        tenants = (await conn.execute(text("SELECT id, wa_portfolio_limit FROM tenants"))).all()
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
    book.portfolio_limits = {str(tenant): limit for tenant, limit in tenants}
    for phone_id, limit, min_gap_s in phones:
        book.min_gap_s[str(phone_id)] = min_gap_s
        book.limits[str(phone_id)] = limit
        book.counters[str(phone_id)] = int(await redis.get(quota_key(phone_id, day)) or 0)
    return book


async def _scheduled(book: Ledger, redis: Redis, day: date, job_id: str, payload: dict[str, Any]) -> None:
    """A dispatched WhatsApp job's scheduled time, by phone, against its reservation's slot; and its
    recipient, by tenant."""
    at = datetime.fromisoformat(payload["scheduledAt"])
    book.slots_per_phone.setdefault(payload["phoneId"], []).append(at)
    book.recipients.setdefault(payload["tenantId"], set()).add(payload["recipientPhone"])
    reserved = await redis.hget(pace_slots_key(payload["tenantId"], day), job_id)  # type: ignore[misc]
    if reserved is None or datetime.fromtimestamp(int(reserved) / 1000, UTC) != at:
        book.slot_mismatches.append(job_id)


def lead_ids(values: list[UUID]) -> set[str]:
    return {str(value) for value in values}


async def queued_outreach_jobs(redis: Redis) -> int:
    """How many jobs wait in the outreach queues (the per-phone WhatsApp and the e-mail queues)."""
    return sum([await redis.zcard(key) async for key in redis.scan_iter(match="q:*")])
