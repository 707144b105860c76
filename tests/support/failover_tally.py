"""What a failover scenario (tests/support/failover.py) lost, counted from PostgreSQL, the Redis that is
primary at the end, and what the sender sent: a message counts once it is sent or still queued."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, Function, quota_key
from src.redis_io.codec import job_deserializer
from tests.support.failover_traffic import Sender, Traffic

MESSAGE_KINDS = ("wa:", "email:", "routed:")


@dataclass
class Tally:
    jobs: Counter[str] = field(default_factory=Counter)  # acknowledged dispatch and route jobs, by function
    refused: int = 0  # enqueues Redis refused during the failover (the client knew)
    outcomes: Counter[str] = field(default_factory=Counter)  # ok, failed, vanished (no result at the end)
    retried: int = 0  # jobs that completed on a later try
    failures: list[Any] = field(default_factory=list)
    sent: int = 0
    queued: int = 0
    quota_used: int = 0
    quota_total: int = 0
    over_limit_by_counter: dict[str, tuple[int, int]] = field(default_factory=dict)
    over_limit_by_jobs: dict[str, tuple[int, int]] = field(default_factory=dict)
    leads_with_two_jobs: list[str] = field(default_factory=list)
    marked_without_job: list[str] = field(default_factory=list)
    jobs_without_mark: list[str] = field(default_factory=list)
    outbox_left: int = 0
    routed_acknowledged: int = 0
    routed_missing: list[str] = field(default_factory=list)

    def violations(self) -> dict[str, Any]:
        return {
            "phones over daily_limit (counter)": self.over_limit_by_counter,
            "phones over daily_limit (messages sent or queued)": self.over_limit_by_jobs,
            "leads with two jobs": self.leads_with_two_jobs,
            "leads marked dispatched without a job": self.marked_without_job,
            "jobs whose lead is not marked": self.jobs_without_mark,
            "acknowledged routed messages missing": self.routed_missing,
            "jobs left in the outbox": self.outbox_left,
        }

    @property
    def messages_over_limit(self) -> int:
        """Messages sent or queued beyond their phone's daily_limit, all phones together."""
        return sum(jobs - limit for jobs, limit in self.over_limit_by_jobs.values())

    def summary(self) -> str:
        lost = {
            name: len(value) if isinstance(value, list | dict) else value
            for name, value in self.violations().items()
        }
        return (
            f"{self.jobs['dispatch']} dispatch and {self.jobs['route']} route jobs acknowledged "
            f"({self.refused} enqueues refused during the failover), outcomes {dict(self.outcomes)}, "
            f"{self.retried} completed on a later try; {self.sent} messages sent, {self.queued} still queued, "
            f"quota used {self.quota_used} of {self.quota_total}; {self.routed_acknowledged} routed messages "
            f"acknowledged; {self.messages_over_limit} messages over the phones' limits; lost: {lost}"
        )


async def tally(redis: Redis, engine: AsyncEngine, day: date, traffic: Traffic, sender: Sender) -> Tally:
    book = Tally(refused=traffic.refused, sent=len(sender.sent))
    await _outcomes(book, redis, traffic)
    queued = await _queued(redis)
    book.queued = len(queued)
    messages = {**queued, **sender.sent}
    await _quota(book, redis, engine, day, messages)
    await _leads(book, engine, messages)
    book.routed_acknowledged = len(traffic.routed)
    book.routed_missing = sorted(job for job in traffic.routed.values() if job not in messages)
    return book


async def _outcomes(book: Tally, redis: Redis, traffic: Traffic) -> None:
    for job in traffic.acknowledged:
        book.jobs[job.function.value] += 1
        raw = await redis.get(ARQ_RESULT_PREFIX + job.job_id)
        if raw is None:
            book.outcomes["vanished"] += 1
            continue
        result = job_deserializer(raw)
        book.outcomes["ok" if result["s"] else "failed"] += 1
        book.retried += result["t"] > 1
        if not result["s"]:
            book.failures.append(result["r"])
    book.jobs.setdefault(Function.DISPATCH.value, 0)


async def _queued(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every message still on an output queue: job id -> its payload."""
    found: dict[str, dict[str, Any]] = {}
    async for key in redis.scan_iter(match=ARQ_JOB_PREFIX + "*", count=1000):
        job_id = key.decode()[len(ARQ_JOB_PREFIX) :]
        if job_id.startswith(MESSAGE_KINDS) and (raw := await redis.get(key)) is not None:
            found[job_id] = job_deserializer(raw)["a"][0]
    return found


async def _quota(
    book: Tally, redis: Redis, engine: AsyncEngine, day: date, messages: dict[str, dict[str, Any]]
) -> None:
    per_phone = Counter(
        payload["phoneId"] for job_id, payload in messages.items() if job_id.startswith(("wa:", "routed:"))
    )
    async with engine.connect() as conn:
        phones = (await conn.execute(text("SELECT id, daily_limit FROM wa_phone_numbers"))).all()
    for phone_id, limit in phones:
        used = int(await redis.get(quota_key(phone_id, day)) or 0)
        book.quota_used += used
        book.quota_total += limit
        if used > limit:
            book.over_limit_by_counter[str(phone_id)] = (used, limit)
        if per_phone[str(phone_id)] > limit:
            book.over_limit_by_jobs[str(phone_id)] = (per_phone[str(phone_id)], limit)


async def _leads(book: Tally, engine: AsyncEngine, messages: dict[str, dict[str, Any]]) -> None:
    per_lead = Counter(
        payload["leadId"] for job_id, payload in messages.items() if job_id.startswith(("wa:", "email:"))
    )
    async with engine.connect() as conn:
        marked = {
            str(row[0])
            for row in await conn.execute(
                text("SELECT lead_id FROM gold_lead_journey WHERE last_dispatched_at IS NOT NULL")
            )
        }
        book.outbox_left = (
            await conn.execute(text("SELECT coalesce(sum(job_count), 0) FROM dispatch_outbox"))
        ).scalar_one()
    book.leads_with_two_jobs = sorted(lead for lead, jobs in per_lead.items() if jobs > 1)
    book.marked_without_job = sorted(marked - set(per_lead))
    book.jobs_without_mark = sorted(set(per_lead) - marked)
