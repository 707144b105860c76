"""Every SQL statement of the service. Functions take the connection first and never commit: the job owns
the transaction. Batch work is set-based: one statement per batch, never one per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, time
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.domain.allocation import PhoneState
from src.domain.channels import LeadContact
from src.domain.dispatch import DueLead
from src.domain.windows import SendingWindow

# The SQL form of domain.allocation.is_available (same tenant is the caller's WHERE clause);
# tests/integration/test_schema.py proves the two agree.
AVAILABLE_PHONE_SQL = "p.status = 'ACTIVE' AND p.is_enabled"
# The due stages and the review hold, exactly as the partial index ix_gold_lead_journey_due states them.
DUE_STAGES_SQL = "j.engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')"
PRIORITIES = ("HIGH", "NORMAL", "LOW")


# ------------------------------------------------------------------ rows


@dataclass(frozen=True, slots=True)
class TenantRow:
    id: UUID
    name: str
    status: str
    timezone: str
    send_window_start: time
    send_window_end: time
    send_days: list[int]
    skip_public_holidays: bool
    holiday_country: str

    def window(self) -> SendingWindow:
        return SendingWindow(
            timezone=self.timezone,
            start=self.send_window_start,
            end=self.send_window_end,
            days=frozenset(self.send_days),
            holiday_country=self.holiday_country if self.skip_public_holidays else None,
        )


@dataclass(frozen=True, slots=True)
class LeadRow:
    journey_id: UUID
    tenant_id: UUID
    lead_id: UUID
    engagement_stage: str
    priority: str
    next_action_at: datetime | None
    requires_human_review: bool
    assigned_phone_id: UUID | None
    whatsapp_opted_out: bool
    email_opted_out: bool
    current_sequence_id: str | None
    sequence_step: int
    last_channel_used: str | None
    denumire: str
    telefon_principal: str | None
    hlr_reachable: bool
    email_principal: str | None
    email_status: str | None
    contact_principal_nume: str | None
    judet: str | None
    localitate: str | None

    def contact(self) -> LeadContact:
        return LeadContact(
            stage=self.engagement_stage,
            phone=self.telefon_principal,
            hlr_reachable=self.hlr_reachable,
            email=self.email_principal,
            email_status=self.email_status,
            whatsapp_opted_out=self.whatsapp_opted_out,
            email_opted_out=self.email_opted_out,
            last_channel_used=self.last_channel_used,
        )


@dataclass(frozen=True, slots=True)
class LeadInTenant:
    """A lead as the per-lead jobs load it: the lead, its tenant's timezone and phone capacity."""

    lead: LeadRow
    tenant_timezone: str
    tenant_has_available_phone: bool


class PhoneRow(NamedTuple):
    """A named tuple rather than a frozen dataclass: a per-lead job builds one per phone of the tenant,
    and a tuple is several times cheaper to make."""

    id: UUID
    tenant_id: UUID
    phone_number: str
    queue_slot: str
    status: str
    is_enabled: bool
    daily_limit: int

    def state(self, used_today: int) -> PhoneState:
        return PhoneState(
            id=self.id,
            tenant_id=self.tenant_id,
            status=self.status,
            is_enabled=self.is_enabled,
            daily_limit=self.daily_limit,
            used_today=used_today,
            queue_slot=self.queue_slot,
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    tenant_id: UUID
    dispatch_job_id: str
    job_count: int
    jobs: bytes


# ------------------------------------------------------------------ tenants

_TENANT_COLUMNS = (
    "id, name, status, timezone, send_window_start, send_window_end, send_days, "
    "skip_public_holidays, holiday_country"
)
_LOAD_TENANT = text(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = :tenant_id")
_ACTIVE_TENANTS = text(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE status = 'ACTIVE' ORDER BY id")


async def load_tenant(conn: AsyncConnection, *, tenant_id: UUID) -> TenantRow | None:
    row = (await conn.execute(_LOAD_TENANT, {"tenant_id": tenant_id})).first()
    return TenantRow(*row) if row else None


async def active_tenants(conn: AsyncConnection) -> list[TenantRow]:
    return [TenantRow(*row) for row in await conn.execute(_ACTIVE_TENANTS)]


# ------------------------------------------------------------------ leads

_JOURNEY_COLUMNS = (
    "j.id AS journey_id, j.tenant_id, j.lead_id, j.engagement_stage, j.priority, j.next_action_at, "
    "j.requires_human_review, j.assigned_phone_id, j.whatsapp_opted_out, j.email_opted_out, "
    "j.current_sequence_id, j.sequence_step, j.last_channel_used"
)
_COMPANY_COLUMNS = (
    "c.denumire, c.telefon_principal, c.hlr_reachable, c.email_principal, c.email_status, "
    "c.contact_principal_nume, c.judet, c.localitate"
)
_COMPANY_JOIN = "JOIN gold_companies c ON c.tenant_id = j.tenant_id AND c.id = j.lead_id"

# The per-lead jobs (select_channel, allocate_phone, route) run these statements thousands of times a
# second, and SQLAlchemy's pool and execution layer cost more CPU than the query itself: they run on a
# plain asyncpg connection from Deps.pg, as prepared statements (asyncpg caches them per connection),
# each standing alone (autocommit): these jobs need no more, and skip a BEGIN and a ROLLBACK.
_LOAD_LEAD = f"""
    SELECT {_JOURNEY_COLUMNS}, {_COMPANY_COLUMNS}, t.timezone,
           EXISTS (SELECT 1 FROM wa_phone_numbers p
                   WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL}) AS has_available_phone
    FROM gold_lead_journey j
    {_COMPANY_JOIN}
    JOIN tenants t ON t.id = j.tenant_id
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""
_PHONE_ARRAYS = ", ".join(
    f"array_agg(p.{column} ORDER BY p.queue_slot) AS {column}s"
    for column in ("id", "phone_number", "queue_slot", "status", "is_enabled", "daily_limit")
)
_LOAD_LEAD_WITH_PHONES = f"""
    SELECT {_JOURNEY_COLUMNS}, {_COMPANY_COLUMNS}, t.timezone,
           EXISTS (SELECT 1 FROM wa_phone_numbers p
                   WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL}) AS has_available_phone,
           phones.*
    FROM gold_lead_journey j
    {_COMPANY_JOIN}
    JOIN tenants t ON t.id = j.tenant_id
    CROSS JOIN LATERAL (
        SELECT {_PHONE_ARRAYS} FROM wa_phone_numbers p WHERE p.tenant_id = j.tenant_id
    ) AS phones
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""
_SET_STICKY = """
    UPDATE gold_lead_journey SET assigned_phone_id = $3, assigned_at = $5
    WHERE tenant_id = $1 AND lead_id = $2 AND assigned_phone_id IS NOT DISTINCT FROM $4::uuid
    RETURNING id
"""
_STICKY_OF = "SELECT assigned_phone_id FROM gold_lead_journey WHERE tenant_id = $1 AND lead_id = $2"
_PHONE_OWNER = "SELECT tenant_id FROM wa_phone_numbers WHERE id = $1"
_LEAD_FIELDS = len(fields(LeadRow))


def _lead_in_tenant(row: Sequence[Any]) -> LeadInTenant:
    return LeadInTenant(LeadRow(*row[:_LEAD_FIELDS]), row[_LEAD_FIELDS], row[_LEAD_FIELDS + 1])


async def load_lead(conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID) -> LeadInTenant | None:
    """The lead of this tenant, or None: a lead of another tenant is not found, by construction."""
    row = await conn.fetchrow(_LOAD_LEAD, tenant_id, lead_id)
    return None if row is None else _lead_in_tenant(row)


async def load_lead_with_phones(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID
) -> tuple[LeadInTenant, list[PhoneRow]] | None:
    """`load_lead` and `tenant_phones` in one round trip (the per-lead jobs need both)."""
    row = await conn.fetchrow(_LOAD_LEAD_WITH_PHONES, tenant_id, lead_id)
    if row is None:
        return None
    ids, numbers, slots, statuses, enabled, limits = tuple(row)[_LEAD_FIELDS + 2 :]
    phones = [
        PhoneRow(pid, tenant_id, number, slot, status, on, limit)
        for pid, number, slot, status, on, limit in zip(
            ids or (), numbers or (), slots or (), statuses or (), enabled or (), limits or (), strict=True
        )
    ]
    return _lead_in_tenant(row), phones


async def set_sticky_phone(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    lead_id: UUID,
    phone_id: UUID,
    expected: UUID | None,
    now: datetime,
) -> bool:
    """Assign the phone only if the lead still has `expected`: of two concurrent allocations, one wins."""
    return await conn.fetchrow(_SET_STICKY, tenant_id, lead_id, phone_id, expected, now) is not None


async def sticky_phone_of(conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID) -> UUID | None:
    value: UUID | None = await conn.fetchval(_STICKY_OF, tenant_id, lead_id)
    return value


async def phone_owner(conn: asyncpg.Connection, *, phone_id: UUID) -> UUID | None:
    owner: UUID | None = await conn.fetchval(_PHONE_OWNER, phone_id)
    return owner


# ------------------------------------------------------------------ phones

_TENANT_PHONES = text(
    "SELECT id, tenant_id, phone_number, queue_slot, status, is_enabled, daily_limit "
    "FROM wa_phone_numbers WHERE tenant_id = :tenant_id ORDER BY queue_slot"
)


async def tenant_phones(conn: AsyncConnection, *, tenant_id: UUID) -> list[PhoneRow]:
    return [PhoneRow(*row) for row in await conn.execute(_TENANT_PHONES, {"tenant_id": tenant_id})]


# ------------------------------------------------------------------ dispatch selection

_BRANCH_COLUMNS = (
    "j.id, j.tenant_id, j.lead_id, j.engagement_stage, j.priority, j.next_action_at, "
    "j.requires_human_review, "
    "j.assigned_phone_id, j.whatsapp_opted_out, j.email_opted_out, j.current_sequence_id, j.sequence_step, "
    "j.last_channel_used"
)


@cache
def _due_leads_statement(priority: str | None, with_sequence: bool, lock: bool) -> TextClause:
    """Due leads, priority first, then next_action_at (never set comes first).

    One branch per priority and per "never scheduled" / "due by now", each a range scan of
    ix_gold_lead_journey_due that stops after :limit rows, so the cost does not grow with the rows
    scheduled in the future. Row-locking queries never run in parallel, so Append returns the branches
    in the order written, and the outer LIMIT stops the later branches from running (or locking) at all.
    The company of each selected lead is one index lookup: the LATERAL subquery's LIMIT 1 (the pair is
    unique anyway) keeps the planner from hashing all of the tenant's companies for a batch.
    """
    sequence = " AND j.current_sequence_id = :sequence_id" if with_sequence else ""
    locking = " FOR UPDATE OF j SKIP LOCKED" if lock else ""
    branches = []
    for number, (prio, due) in enumerate(
        (p, d) for p in (PRIORITIES if priority is None else (priority,)) for d in ("never", "due")
    ):
        condition = "j.next_action_at IS NULL" if due == "never" else "j.next_action_at <= :now"
        order = "" if due == "never" else " ORDER BY j.next_action_at"
        branches.append(
            f"SELECT * FROM (SELECT {_BRANCH_COLUMNS}, {number} AS branch FROM gold_lead_journey j"
            f" WHERE j.tenant_id = :tenant_id AND j.priority = '{prio}' AND {condition}"
            f" AND {DUE_STAGES_SQL} AND NOT j.requires_human_review{sequence}"
            f"{order} LIMIT :limit{locking}) AS b{number}"
        )
    union = "\n UNION ALL ".join(branches)
    return text(
        f"""
        SELECT d.id, d.tenant_id, d.lead_id, d.engagement_stage, d.priority, d.next_action_at,
               d.requires_human_review, d.assigned_phone_id, d.whatsapp_opted_out, d.email_opted_out,
               d.current_sequence_id, d.sequence_step, d.last_channel_used, {_COMPANY_COLUMNS}
        FROM ({union} LIMIT :limit) AS d
        CROSS JOIN LATERAL (
            SELECT {_COMPANY_COLUMNS} FROM gold_companies c
            WHERE c.tenant_id = d.tenant_id AND c.id = d.lead_id LIMIT 1
        ) AS c
        ORDER BY d.branch, d.next_action_at
        """
    )


async def due_leads(
    conn: AsyncConnection,
    *,
    tenant_id: UUID,
    now: datetime,
    limit: int,
    priority: str | None = None,
    sequence_id: str | None = None,
    lock: bool = True,
) -> list[DueLead]:
    """The next `limit` due leads of the tenant; with `lock`, rows other dispatchers hold are skipped and
    the returned rows stay locked until the transaction ends."""
    statement = _due_leads_statement(priority, sequence_id is not None, lock)
    params: dict[str, Any] = {"tenant_id": tenant_id, "now": now, "limit": limit}
    if sequence_id is not None:
        params["sequence_id"] = sequence_id
    return [_due_lead(row) for row in await conn.execute(statement, params)]


def _due_lead(row: Sequence[Any]) -> DueLead:
    """A selected row as dispatch decides on it (the columns of `_due_leads_statement`, in order)."""
    (journey_id, _, lead_id, stage, _, _, _, sticky, wa_out, email_out, sequence_id, step, last_channel,
     company, phone, hlr, email, email_status, contact, judet, localitate) = row  # fmt: skip
    return DueLead(
        journey_id=journey_id,
        lead_id=lead_id,
        contact=LeadContact(
            stage=stage,
            phone=phone,
            hlr_reachable=hlr,
            email=email,
            email_status=email_status,
            whatsapp_opted_out=wa_out,
            email_opted_out=email_out,
            last_channel_used=last_channel,
        ),
        sticky_phone_id=sticky,
        sequence_id=sequence_id,
        sequence_step=step,
        company_name=company,
        contact_name=contact,
        judet=judet,
        localitate=localitate,
    )


@cache
def _review_count_statement(with_priority: bool, with_sequence: bool) -> TextClause:
    filters = (" AND j.priority = :priority" if with_priority else "") + (
        " AND j.current_sequence_id = :sequence_id" if with_sequence else ""
    )
    return text(
        f"""
        SELECT count(*) FROM gold_lead_journey j
        WHERE j.tenant_id = :tenant_id AND {DUE_STAGES_SQL} AND j.requires_human_review
          AND (j.next_action_at IS NULL OR j.next_action_at <= :now){filters}
        """
    )


async def count_due_held_for_review(
    conn: AsyncConnection,
    *,
    tenant_id: UUID,
    now: datetime,
    priority: str | None = None,
    sequence_id: str | None = None,
) -> int:
    params: dict[str, Any] = {"tenant_id": tenant_id, "now": now}
    if priority is not None:
        params["priority"] = priority
    if sequence_id is not None:
        params["sequence_id"] = sequence_id
    statement = _review_count_statement(priority is not None, sequence_id is not None)
    return int((await conn.execute(statement, params)).scalar_one())


# ------------------------------------------------------------------ dispatch writes


@dataclass(frozen=True, slots=True)
class JourneyUpdate:
    journey_id: UUID
    phone_id: UUID | None  # new sticky phone, or None to keep the current one
    channel: str | None  # the channel dispatched on, or None for a lead that was skipped
    next_action_at: datetime


_UPDATE_JOURNEYS = text(
    """
    UPDATE gold_lead_journey AS j SET
        assigned_phone_id = COALESCE(u.phone_id, j.assigned_phone_id),
        assigned_at = CASE WHEN u.phone_id IS NOT NULL AND u.phone_id IS DISTINCT FROM j.assigned_phone_id
                           THEN :now ELSE j.assigned_at END,
        last_dispatched_at = CASE WHEN u.channel IS NULL THEN j.last_dispatched_at ELSE :now END,
        last_channel_used = COALESCE(u.channel, j.last_channel_used),
        next_action_at = u.next_action_at
    FROM unnest(CAST(:journey_ids AS uuid[]), CAST(:phone_ids AS uuid[]), CAST(:channels AS text[]),
                CAST(:next_action_ats AS timestamptz[])) AS u(id, phone_id, channel, next_action_at)
    WHERE j.id = u.id AND j.id = ANY(CAST(:journey_ids AS uuid[])) AND j.tenant_id = :tenant_id
    """
)


async def update_journeys(
    conn: AsyncConnection, *, tenant_id: UUID, now: datetime, updates: Sequence[JourneyUpdate]
) -> int:
    """One UPDATE for the whole batch: sticky phone, last dispatch, last channel, next action."""
    if not updates:
        return 0
    params = {
        "tenant_id": tenant_id,
        "now": now,
        "journey_ids": [u.journey_id for u in updates],
        "phone_ids": [u.phone_id for u in updates],
        "channels": [u.channel for u in updates],
        "next_action_ats": [u.next_action_at for u in updates],
    }
    return (await conn.execute(_UPDATE_JOURNEYS, params)).rowcount


_INSERT_OUTBOX = text(
    "INSERT INTO dispatch_outbox (tenant_id, dispatch_job_id, job_count, jobs) "
    "VALUES (:tenant_id, :dispatch_job_id, :job_count, :jobs) RETURNING id"
)
_TAKE_OUTBOX = text(
    "DELETE FROM dispatch_outbox WHERE id = (SELECT id FROM dispatch_outbox WHERE id = :id "
    "FOR UPDATE SKIP LOCKED) RETURNING id"
)
_DELETE_OUTBOX = text("DELETE FROM dispatch_outbox WHERE id = :id")


@cache
def _orphans_statement(for_tenant: bool) -> TextClause:
    tenant = " AND tenant_id = :tenant_id" if for_tenant else ""
    return text(
        f"SELECT id, tenant_id, dispatch_job_id, job_count, jobs FROM dispatch_outbox "
        f"WHERE created_at <= :cutoff{tenant} ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
    )


async def insert_outbox(
    conn: AsyncConnection, *, tenant_id: UUID, dispatch_job_id: str, job_count: int, jobs: bytes
) -> int:
    """One row for a dispatch batch's jobs (src.outbound.encode_batch), in the dispatch's transaction."""
    params = {
        "tenant_id": tenant_id,
        "dispatch_job_id": dispatch_job_id,
        "job_count": job_count,
        "jobs": jobs,
    }
    outbox_id: int = (await conn.execute(_INSERT_OUTBOX, params)).scalar_one()
    return outbox_id


async def take_outbox(conn: AsyncConnection, *, outbox_id: int) -> bool:
    """Delete the row; False when a relay holds it (or has deleted it). Like a claim, the row stays locked
    until the transaction ends, and a rollback puts it back: enqueue its jobs before committing."""
    return (await conn.execute(_TAKE_OUTBOX, {"id": outbox_id})).first() is not None


async def claim_orphaned_outbox(
    conn: AsyncConnection, *, cutoff: datetime, limit: int, tenant_id: UUID | None = None
) -> list[OutboxRow]:
    """Rows older than `cutoff`: left behind by a dispatcher that died between its commit and its enqueue."""
    params: dict[str, Any] = {"cutoff": cutoff, "limit": limit}
    if tenant_id is not None:
        params["tenant_id"] = tenant_id
    return [OutboxRow(*row) for row in await conn.execute(_orphans_statement(tenant_id is not None), params)]


async def delete_outbox(conn: AsyncConnection, *, outbox_id: int) -> None:
    await conn.execute(_DELETE_OUTBOX, {"id": outbox_id})


# ------------------------------------------------------------------ ops tool (src/ops)


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


@dataclass(frozen=True, slots=True)
class TenantOverview:
    id: UUID
    name: str
    status: str
    timezone: str
    phones: int
    leads: int
    due_leads: int


_PHONE_OVERVIEW_COLUMNS = (
    "p.id, p.tenant_id, t.name, t.timezone, p.phone_number, p.queue_slot, p.status, p.is_enabled, "
    "p.daily_limit"
)


@cache
def _phones_overview_statement(for_tenant: bool) -> TextClause:
    tenant = " WHERE p.tenant_id = :tenant_id" if for_tenant else ""
    return text(
        f"SELECT {_PHONE_OVERVIEW_COLUMNS} FROM wa_phone_numbers p JOIN tenants t ON t.id = p.tenant_id"
        f"{tenant} ORDER BY t.name, t.id, p.queue_slot"
    )


async def phones_overview(conn: AsyncConnection, *, tenant_id: UUID | None = None) -> list[PhoneOverview]:
    params = {"tenant_id": tenant_id} if tenant_id is not None else {}
    statement = _phones_overview_statement(tenant_id is not None)
    return [PhoneOverview(*row) for row in await conn.execute(statement, params)]


_TENANTS_OVERVIEW = text(
    f"""
    SELECT t.id, t.name, t.status, t.timezone,
           (SELECT count(*) FROM wa_phone_numbers p WHERE p.tenant_id = t.id),
           (SELECT count(*) FROM gold_lead_journey j WHERE j.tenant_id = t.id),
           (SELECT count(*) FROM gold_lead_journey j WHERE j.tenant_id = t.id AND {DUE_STAGES_SQL}
              AND NOT j.requires_human_review AND (j.next_action_at IS NULL OR j.next_action_at <= :now))
    FROM tenants t ORDER BY t.name, t.id
    """
)


async def tenants_overview(conn: AsyncConnection, *, now: datetime) -> list[TenantOverview]:
    return [TenantOverview(*row) for row in await conn.execute(_TENANTS_OVERVIEW, {"now": now})]


_PHONES_TAKEN = text(
    "SELECT id, tenant_id, phone_number, queue_slot FROM wa_phone_numbers "
    "WHERE phone_number = :phone_number OR queue_slot = :queue_slot"
)


async def phones_taking(
    conn: AsyncConnection, *, phone_number: str, queue_slot: str | None
) -> list[tuple[UUID, UUID, str, str]]:
    """Phones that already have this number or this queue slot."""
    params = {"phone_number": phone_number, "queue_slot": queue_slot}
    return [(row[0], row[1], row[2], row[3]) for row in await conn.execute(_PHONES_TAKEN, params)]


@dataclass(frozen=True, slots=True)
class NewPhone:
    tenant_id: UUID
    phone_number: str  # E.164
    queue_slot: str | None = None  # None: the trigger wa_phone_numbers_queue_slot picks one
    daily_limit: int | None = None  # None: the column default
    status: str | None = None
    is_enabled: bool | None = None
    id: UUID | None = None


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


@dataclass(frozen=True, slots=True)
class NewTenant:
    id: UUID
    name: str
    timezone: str
    send_window_start: time
    send_window_end: time
    send_days: list[int]
    skip_public_holidays: bool


@dataclass(frozen=True, slots=True)
class NewLead:
    """A company and its journey (the lead id is the company id)."""

    id: UUID
    denumire: str
    telefon_principal: str | None
    hlr_reachable: bool
    email_principal: str | None
    email_status: str | None
    contact_principal_nume: str | None
    judet: str | None
    localitate: str | None
    engagement_stage: str
    priority: str
    next_action_at: datetime | None
    requires_human_review: bool
    assigned_phone_id: UUID | None
    whatsapp_opted_out: bool
    email_opted_out: bool
    current_sequence_id: str | None
    sequence_step: int
    last_channel_used: str | None


_INSERT_TENANT = text(
    """
    INSERT INTO tenants (id, name, timezone, send_window_start, send_window_end, send_days,
                         skip_public_holidays)
    VALUES (:id, :name, :timezone, :send_window_start, :send_window_end, CAST(:send_days AS smallint[]),
            :skip_public_holidays)
    """
)
_COMPANY_FIELDS = (
    ("id", "uuid"),
    ("denumire", "text"),
    ("telefon_principal", "text"),
    ("hlr_reachable", "bool"),
    ("email_principal", "text"),
    ("email_status", "text"),
    ("contact_principal_nume", "text"),
    ("judet", "text"),
    ("localitate", "text"),
)
_JOURNEY_FIELDS = (
    ("id", "uuid"),
    ("engagement_stage", "text"),
    ("priority", "text"),
    ("next_action_at", "timestamptz"),
    ("requires_human_review", "bool"),
    ("assigned_phone_id", "uuid"),
    ("whatsapp_opted_out", "bool"),
    ("email_opted_out", "bool"),
    ("current_sequence_id", "text"),
    ("sequence_step", "int"),
    ("last_channel_used", "text"),
)


def _unnest(fields_: tuple[tuple[str, str], ...]) -> str:
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in fields_)
    return f"unnest({arrays}) AS u({', '.join(name for name, _ in fields_)})"


_INSERT_COMPANIES = text(
    f"INSERT INTO gold_companies (tenant_id, {', '.join(n for n, _ in _COMPANY_FIELDS)}) "
    f"SELECT :tenant_id, u.* FROM {_unnest(_COMPANY_FIELDS)}"
)
_INSERT_JOURNEYS = text(
    "INSERT INTO gold_lead_journey (tenant_id, lead_id, "
    f"{', '.join(n for n, _ in _JOURNEY_FIELDS[1:])}) "
    f"SELECT :tenant_id, u.* FROM {_unnest(_JOURNEY_FIELDS)}"
)


async def insert_tenant(conn: AsyncConnection, *, tenant: NewTenant) -> None:
    await conn.execute(
        _INSERT_TENANT,
        {
            "id": tenant.id,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "send_window_start": tenant.send_window_start,
            "send_window_end": tenant.send_window_end,
            "send_days": tenant.send_days,
            "skip_public_holidays": tenant.skip_public_holidays,
        },
    )


async def insert_leads(conn: AsyncConnection, *, tenant_id: UUID, leads: Sequence[NewLead]) -> None:
    """Companies and their journeys, one statement each."""
    if not leads:
        return
    companies = {name: [getattr(lead, name) for lead in leads] for name, _ in _COMPANY_FIELDS}
    await conn.execute(_INSERT_COMPANIES, {"tenant_id": tenant_id, **companies})
    journeys = {name: [getattr(lead, name) for lead in leads] for name, _ in _JOURNEY_FIELDS}
    await conn.execute(_INSERT_JOURNEYS, {"tenant_id": tenant_id, **journeys})


_DELETE_TENANT = tuple(
    text(f"DELETE FROM {table} WHERE {column} = :tenant_id")
    for table, column in (
        ("dispatch_outbox", "tenant_id"),
        ("gold_lead_journey", "tenant_id"),
        ("gold_companies", "tenant_id"),
        ("wa_phone_numbers", "tenant_id"),
        ("tenants", "id"),
    )
)


async def delete_tenant(conn: AsyncConnection, *, tenant_id: UUID) -> None:
    """A tenant and every row of it (the demo's reset)."""
    for statement in _DELETE_TENANT:
        await conn.execute(statement, {"tenant_id": tenant_id})


_TENANT_LEADS = text(
    f"SELECT {_JOURNEY_COLUMNS}, {_COMPANY_COLUMNS} FROM gold_lead_journey j {_COMPANY_JOIN} "
    "WHERE j.tenant_id = :tenant_id ORDER BY c.denumire"
)


async def tenant_leads(conn: AsyncConnection, *, tenant_id: UUID) -> list[LeadRow]:
    """Every lead of the tenant, due or not, by company name (small tenants: the demo, the ops tool)."""
    return [LeadRow(*row) for row in await conn.execute(_TENANT_LEADS, {"tenant_id": tenant_id})]


_DATABASE_READY = text(
    "SELECT to_regclass('public.tenants') IS NOT NULL AND to_regclass('public.wa_phone_numbers') IS NOT NULL"
)


async def database_ready(conn: AsyncConnection) -> bool:
    """The database answers and the migrations have created the contract tables."""
    return bool((await conn.execute(_DATABASE_READY)).scalar())
