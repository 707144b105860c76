"""`status`: every queue's depth, each phone's quota today and the health of the queue workers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.config import Config
from src.db import queries
from src.domain.allocation import is_available
from src.domain.quota import quota_date, remaining
from src.domain.windows import zone
from src.names import (
    EMAIL_COLD_QUEUE,
    EMAIL_WARM_QUEUE,
    Queue,
    pace_key,
    quota_key,
    whatsapp_queue,
)
from src.ops import argtypes
from src.ops import queues as arq_state
from src.ops.render import print_json, table
from src.ops.services import database, redis_client
from src.redis_io.portfolio_use import recipients_in_24h
from src.runtime.clock import epoch_ms


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="queue depths, today's quota per phone, worker health",
        description="Depth of the four job queues, of every phone queue and of the e-mail queues "
        "(deferred, queued, in progress); each phone's quota used today in its tenant's timezone; "
        "the health keys of the queue workers.",
    )
    parser.add_argument("--tenant-id", type=argtypes.uuid, help="only this tenant's phones and queues")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    async with database(config) as engine, redis_client(config) as client:
        report = await collect(engine, client.redis, now=datetime.now(UTC), tenant_id=args.tenant_id)
    if args.json:
        print_json(as_json(report))
    else:
        print(render(report))
    return 0


@dataclass(frozen=True, slots=True)
class PhoneQuota:
    """A phone's quota today; without a quota day when its tenant's timezone is unusable (`problem`)."""

    phone: queries.PhoneOverview
    quota_date: date | None
    used: int | None
    problem: str | None = None
    next_free: datetime | None = None  # the phone's next free send instant today (pace_key)

    @property
    def available(self) -> bool:
        return is_available(self.phone, self.phone.tenant_id)

    @property
    def limit(self) -> int:
        """Today's effective limit: the daily limit, or less while the number warms up."""
        return self.phone.effective_limit(self.quota_date) if self.quota_date else self.phone.daily_limit

    @property
    def warmup_day(self) -> int | None:
        """Day k of the warm-up while it holds the number below its daily limit; None otherwise."""
        return self.phone.warmup_day(self.quota_date) if self.quota_date else None

    @property
    def warmup_note(self) -> str | None:
        day = self.warmup_day
        return f"warming up, day {day} (limit {self.phone.daily_limit})" if day else None

    @property
    def remaining(self) -> int | None:
        """Sends left today; None for a phone that takes none (paused, banned or disabled) or whose
        tenant has no quota day."""
        if not self.available or self.used is None:
            return None
        return remaining(self.limit, self.used)

    @property
    def queue(self) -> str:
        return whatsapp_queue(self.phone.queue_slot)

    @property
    def followup_queue(self) -> str:
        return whatsapp_queue(self.phone.queue_slot, followup=True)


@dataclass(frozen=True, slots=True)
class PortfolioUse:
    """A tenant's unique WhatsApp recipients of the last 24 h, against its limit (None: no limit)."""

    tenant_id: UUID
    tenant_name: str
    used: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    checked_at: datetime
    queues: list[arq_state.QueueDepth]
    phones: list[PhoneQuota]
    workers: list[arq_state.WorkerHealth]
    portfolios: list[PortfolioUse] = field(default_factory=list)

    @property
    def misconfigured(self) -> list[tuple[UUID, str, str]]:
        """(tenant id, name, problem) of each tenant whose phones have no quota day."""
        found = {(q.phone.tenant_id, q.phone.tenant_name, q.problem) for q in self.phones if q.problem}
        return sorted(found, key=lambda tenant: (tenant[1], str(tenant[0])))


def _quota_day(now: datetime, timezone: str) -> tuple[date | None, str | None]:
    """The tenant-local date, or the reason there is none: one bad tenant row must not stop the report."""
    try:
        return quota_date(now, timezone), None
    except ValueError as exc:  # an unknown timezone (src/domain/windows.py)
        return None, str(exc)


async def phone_quotas(
    engine: AsyncEngine, redis: Redis, *, now: datetime, tenant_id: UUID | None = None
) -> list[PhoneQuota]:
    """Each phone's counter for today in its tenant's timezone (docs/contract.md §2)."""
    async with engine.connect() as conn:
        phones = await queries.phones_overview(conn, tenant_id=tenant_id)
    days = [_quota_day(now, phone.tenant_timezone) for phone in phones]
    dated = [(phone.id, day) for phone, (day, _) in zip(phones, days, strict=True) if day]
    keys = [quota_key(*key) for key in dated] + [pace_key(*key) for key in dated]
    found = await redis.mget(keys) if keys else []
    counters, free = iter(found[: len(dated)]), iter(found[len(dated) :])
    return [
        PhoneQuota(phone, day, int(next(counters) or 0), None, _instant(next(free)))
        if day
        else PhoneQuota(phone, None, None, problem)
        for phone, (day, problem) in zip(phones, days, strict=True)
    ]


def _instant(epoch_ms_value: bytes | str | None) -> datetime | None:
    return datetime.fromtimestamp(int(epoch_ms_value) / 1000, UTC) if epoch_ms_value else None


async def portfolio_use(redis: Redis, phones: Sequence[PhoneQuota], *, now: datetime) -> list[PortfolioUse]:
    """Each tenant's portfolio budget used, for the tenants with phones."""
    tenants = {q.phone.tenant_id: q.phone for q in phones}
    used = await recipients_in_24h(redis, list(tenants), now=now)
    return [
        PortfolioUse(tenant_id, phone.tenant_name, count, phone.tenant_portfolio_limit)
        for (tenant_id, phone), count in zip(tenants.items(), used, strict=True)
    ]


def queue_names(phones: Sequence[PhoneQuota]) -> list[str]:
    """The four job queues, then each phone's two queues, then the e-mail queues."""
    names = [queue.value for queue in Queue]
    for quota in phones:
        names += [quota.queue, quota.followup_queue]
    return [*names, EMAIL_COLD_QUEUE, EMAIL_WARM_QUEUE]


async def collect(
    engine: AsyncEngine, redis: Redis, *, now: datetime, tenant_id: UUID | None = None
) -> StatusReport:
    phones = await phone_quotas(engine, redis, now=now, tenant_id=tenant_id)
    depths = await arq_state.queue_depths(redis, queue_names(phones), now_ms=epoch_ms(now))
    workers = await arq_state.worker_health(redis)
    return StatusReport(now, depths, phones, workers, await portfolio_use(redis, phones, now=now))


def as_json(report: StatusReport) -> dict[str, object]:
    return {
        "checkedAt": report.checked_at.isoformat(),
        "queues": [
            {"queue": d.queue, "deferred": d.deferred, "queued": d.queued, "inProgress": d.in_progress}
            for d in report.queues
        ],
        "phones": [
            {
                "phoneId": str(q.phone.id),
                "tenantId": str(q.phone.tenant_id),
                "tenantName": q.phone.tenant_name,
                "phoneNumber": q.phone.phone_number,
                "queueSlot": q.phone.queue_slot,
                "queue": q.queue,
                "followupQueue": q.followup_queue,
                "status": q.phone.status,
                "isEnabled": q.phone.is_enabled,
                "quotaDate": q.quota_date.isoformat() if q.quota_date else None,
                "used": q.used,
                "dailyLimit": q.phone.daily_limit,
                "effectiveLimit": q.limit,
                "warmupDay": q.warmup_day,
                "warmupStartedOn": q.phone.warmup_started_on.isoformat()
                if q.phone.warmup_started_on
                else None,
                "remaining": q.remaining,
                "nextFreeSlot": q.next_free.isoformat() if q.next_free else None,
                "problem": q.problem,
            }
            for q in report.phones
        ],
        "portfolios": [
            {"tenantId": str(p.tenant_id), "tenantName": p.tenant_name, "used": p.used, "limit": p.limit}
            for p in report.portfolios
        ],
        "misconfiguredTenants": [
            {"tenantId": str(tenant_id), "tenantName": name, "problem": problem}
            for tenant_id, name, problem in report.misconfigured
        ],
        "workers": [
            {"name": w.name, "key": w.key, "up": w.up, "expiresInS": w.expires_in_s, "report": w.report}
            for w in report.workers
        ],
    }


def phone_table(phones: Sequence[PhoneQuota]) -> str:
    if not phones:
        return "  (no phones registered: `cerniq-ops phones add --tenant-id ... --number ...`)"
    return table(
        ["TENANT", "PHONE", "QUEUE", "STATUS", "QUOTA DAY", "USED", "LIMIT", "LEFT", "WARM-UP", "NEXT SLOT"],
        [
            (
                q.phone.tenant_name,
                q.phone.phone_number,
                q.queue,
                q.phone.status if q.phone.is_enabled else f"{q.phone.status} (disabled)",
                q.quota_date.isoformat() if q.quota_date else q.problem,
                q.used,
                q.limit,
                q.remaining,
                q.warmup_note,
                local_time(q),
            )
            for q in phones
        ],
    )


def local_time(q: PhoneQuota) -> str | None:
    """The next free slot on the tenant's wall clock."""
    if q.next_free is None:
        return None
    return f"{q.next_free.astimezone(zone(q.phone.tenant_timezone)):%H:%M:%S}"


def portfolio_table(portfolios: Sequence[PortfolioUse]) -> str:
    return table(
        ["TENANT", "USED (24 H)", "LIMIT"],
        [(p.tenant_name, p.used, p.limit if p.limit is not None else "no limit") for p in portfolios],
    )


def render(report: StatusReport) -> str:
    depth_rows = [(d.queue, d.deferred, d.queued, d.in_progress) for d in report.queues]
    worker_rows = [
        (
            w.name,
            "up" if w.up else "DOWN",
            f"{w.expires_in_s:.0f}s" if w.expires_in_s is not None else None,
            w.report,
        )
        for w in report.workers
    ]
    return "\n".join(
        [
            f"Status at {report.checked_at:%Y-%m-%d %H:%M:%S %Z}",
            "",
            "Queues",
            table(["QUEUE", "DEFERRED", "QUEUED", "IN PROGRESS"], depth_rows),
            "",
            "WhatsApp phones: today's quota in each tenant's timezone",
            phone_table(report.phones),
            "",
            "WhatsApp portfolio budget: unique recipients in the last 24 h",
            portfolio_table(report.portfolios),
            "",
            "Queue workers (arq health keys)",
            table(["WORKER", "STATE", "EXPIRES", "LAST REPORT"], worker_rows),
            *_misconfigured_section(report),
        ]
    )


def _misconfigured_section(report: StatusReport) -> list[str]:
    if not report.misconfigured:
        return []
    return [
        "",
        "Misconfigured tenants: no quota day, and their jobs fail until tenants.timezone is an IANA name "
        "such as Europe/Bucharest",
        table(["TENANT", "NAME", "PROBLEM"], report.misconfigured),
    ]
