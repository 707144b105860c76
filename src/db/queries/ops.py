"""The ops tool's statements (src/ops): overviews, registering phones, the leads of a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.db.queries.common import COMPANY_JOIN, DUE_STAGES_SQL, NOT_OBJECTED_SQL
from src.db.queries.rows import (
    LEAD_COLUMNS,
    TENANT_COLUMNS,
    LeadRow,
    TenantRow,
    decode,
)
from src.domain.allocation import PhoneState
from src.domain.senders import effective_daily_limit, warmup_day


@dataclass(frozen=True, slots=True)
class PhoneOverview:
    """A phone as the ops tool shows it: with its tenant's name and timezone (the quota day)."""

    id: UUID
    tenant_id: UUID
    tenant_name: str
    tenant_timezone: str
    phone_number: str
    queue_slot: str
    status: str
    is_enabled: bool
    daily_limit: int
    warmup_started_on: date | None
    warmup_initial_limit: int
    warmup_daily_increase: int
    tenant_portfolio_limit: int | None

    def effective_limit(self, day: date) -> int:
        """The daily limit on tenant-local `day`, warm-up included (src/domain/senders.py)."""
        return effective_daily_limit(*self._warmup, day)

    def warmup_day(self, day: date) -> int | None:
        return warmup_day(*self._warmup, day)

    @property
    def _warmup(self) -> tuple[int, date | None, int, int]:
        return self.daily_limit, self.warmup_started_on, self.warmup_initial_limit, self.warmup_daily_increase

    def state(self, used_today: int) -> PhoneState:
        """The phone as the allocator sees it, with `used_today` reserved."""
        p = self
        return PhoneState(p.id, p.tenant_id, p.status, p.is_enabled, p.daily_limit, used_today, p.queue_slot)


@dataclass(frozen=True, slots=True)
class TenantOverview:
    id: UUID
    name: str
    status: str
    timezone: str
    phones: int
    leads: int
    due_leads: int


PHONE_OVERVIEW_COLUMNS = (
    "p.id, p.tenant_id, t.name AS tenant_name, t.timezone AS tenant_timezone, p.phone_number, p.queue_slot, "
    "p.status, p.is_enabled, p.daily_limit, p.warmup_started_on, p.warmup_initial_limit, "
    "p.warmup_daily_increase, t.wa_portfolio_limit AS tenant_portfolio_limit"
)


@cache
def _phones_overview_statement(for_tenant: bool) -> TextClause:
    tenant = " WHERE p.tenant_id = :tenant_id" if for_tenant else ""
    return text(
        f"SELECT {PHONE_OVERVIEW_COLUMNS} FROM wa_phone_numbers p JOIN tenants t ON t.id = p.tenant_id"
        f"{tenant} ORDER BY t.name, t.id, p.queue_slot"
    )


_TENANT = text(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = :tenant_id")


async def find_tenant(conn: AsyncConnection, *, tenant_id: UUID) -> TenantRow | None:
    row = (await conn.execute(_TENANT, {"tenant_id": tenant_id})).first()
    return decode(TenantRow, row._mapping) if row else None


async def phones_overview(conn: AsyncConnection, *, tenant_id: UUID | None = None) -> list[PhoneOverview]:
    params = {"tenant_id": tenant_id} if tenant_id is not None else {}
    statement = _phones_overview_statement(tenant_id is not None)
    return [decode(PhoneOverview, row._mapping) for row in await conn.execute(statement, params)]


_TENANTS_OVERVIEW = text(
    f"""
    SELECT t.id, t.name, t.status, t.timezone,
           (SELECT count(*) FROM wa_phone_numbers p WHERE p.tenant_id = t.id) AS phones,
           (SELECT count(*) FROM gold_lead_journey j WHERE j.tenant_id = t.id) AS leads,
           (SELECT count(*) FROM gold_lead_journey j WHERE j.tenant_id = t.id AND {DUE_STAGES_SQL}
              AND NOT j.requires_human_review AND {NOT_OBJECTED_SQL}
              AND (j.next_action_at IS NULL OR j.next_action_at <= :now))
             AS due_leads
    FROM tenants t ORDER BY t.name, t.id
    """
)


async def tenants_overview(conn: AsyncConnection, *, now: datetime) -> list[TenantOverview]:
    rows = await conn.execute(_TENANTS_OVERVIEW, {"now": now})
    return [decode(TenantOverview, row._mapping) for row in rows]


_PHONES_TAKEN = text(
    "SELECT id, tenant_id, phone_number, queue_slot FROM wa_phone_numbers "
    "WHERE phone_number = :phone_number OR queue_slot = :queue_slot"
)


async def phones_taking(
    conn: AsyncConnection, *, phone_number: str, queue_slot: str | None
) -> list[tuple[UUID, UUID, str, str]]:
    """Phones that already have this number or this queue slot."""
    params = {"phone_number": phone_number, "queue_slot": queue_slot}
    rows = await conn.execute(_PHONES_TAKEN, params)
    return [(row.id, row.tenant_id, row.phone_number, row.queue_slot) for row in rows]


@dataclass(frozen=True, slots=True)
class NewPhone:
    tenant_id: UUID
    phone_number: str  # E.164
    queue_slot: str | None = None  # None: the trigger wa_phone_numbers_queue_slot picks one
    daily_limit: int | None = None  # None: the column default
    status: str | None = None
    is_enabled: bool | None = None
    id: UUID | None = None
    warmup_started_on: date | None = None  # None: warmed up (the column's NULL)
    warmup_initial_limit: int | None = None
    warmup_daily_increase: int | None = None


async def insert_phone(conn: AsyncConnection, *, phone: NewPhone) -> tuple[UUID, str]:
    """Register one phone; returns its id and queue slot. Unset fields take the column defaults."""
    values = {
        name: value
        for name, value in (
            ("id", phone.id),
            ("tenant_id", phone.tenant_id),
            ("phone_number", phone.phone_number),
            ("queue_slot", phone.queue_slot),
            ("daily_limit", phone.daily_limit),
            ("status", phone.status),
            ("is_enabled", phone.is_enabled),
            ("warmup_started_on", phone.warmup_started_on),
            ("warmup_initial_limit", phone.warmup_initial_limit),
            ("warmup_daily_increase", phone.warmup_daily_increase),
        )
        if value is not None
    }
    row = (await conn.execute(_insert_phone_statement(tuple(values)), values)).one()
    return row[0], row[1]


@cache
def _insert_phone_statement(columns: tuple[str, ...]) -> TextClause:
    return text(
        f"INSERT INTO wa_phone_numbers ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)}) RETURNING id, queue_slot"
    )


_TENANT_LEADS = text(
    f"SELECT {LEAD_COLUMNS} FROM gold_lead_journey j {COMPANY_JOIN} "
    "WHERE j.tenant_id = :tenant_id ORDER BY c.denumire"
)


async def tenant_leads(conn: AsyncConnection, *, tenant_id: UUID) -> list[LeadRow]:
    """Every lead of the tenant, due or not, by company name (small tenants: the demo, the ops tool)."""
    rows = await conn.execute(_TENANT_LEADS, {"tenant_id": tenant_id})
    return [decode(LeadRow, row._mapping) for row in rows]


_DATABASE_READY = text(
    "SELECT to_regclass('public.tenants') IS NOT NULL AND to_regclass('public.wa_phone_numbers') IS NOT NULL"
)


async def database_ready(conn: AsyncConnection) -> bool:
    """The database answers and the migrations have created the contract tables."""
    return bool((await conn.execute(_DATABASE_READY)).scalar())
