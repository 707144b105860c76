"""The per-lead jobs' statements (select_channel, allocate_phone, route).

They run thousands of times a second, and SQLAlchemy's pool and execution layer cost more CPU than the
query itself: they run on a plain asyncpg connection from Deps.pg, as prepared statements (asyncpg caches
them per connection), each standing alone (autocommit). Each job loads what its decision needs in one
round trip, and nothing more: rows decoded that a job does not read cost as much as the query.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from src.db.queries.common import AVAILABLE_PHONE_SQL, COMPANY_JOIN
from src.db.queries.lawful import (
    BASES_COLUMNS,
    PROBE_COLUMNS,
    SUPPRESSION_PROBE,
    decode_bases,
    suppressed_media,
)
from src.db.queries.rows import (
    PhoneRow,
    Record,
    TenantRow,
    columns,
    decode,
    field_names,
    lead_contact,
    tenant_columns,
)
from src.domain.channels import LeadContact, normalize_phone
from src.domain.lawful import LawfulStanding
from src.domain.lead_gate import LeadStanding

# The tenant's row beside a phone's, renamed (t_id, t_status, ...): both have an id and a status, and
# rows are decoded by column name.
_TENANT_COLUMNS = tenant_columns("t", "t_")
# What the refusals of src/domain/lead_gate.py read of the journey (alias j) and its company (alias c,
# the keys suppression entries name it by; SUPPRESSION_PROBE joined as sup), with the tenant's columns.
_STANDING_COLUMNS = (
    "j.engagement_stage, j.requires_human_review, j.whatsapp_opted_out, c.telefon_principal, "
    f"c.email_principal, {BASES_COLUMNS}, {PROBE_COLUMNS}"
)


def _tenant(row: Record) -> TenantRow:
    return TenantRow(**{name: row["t_" + name] for name in field_names(TenantRow)})


async def _lawful(
    conn: asyncpg.Connection, tenant_id: UUID, allowed: list[str], row: Record
) -> LawfulStanding:
    """What the law says of the lead of a row with `_STANDING_COLUMNS` (src/domain/lawful.py)."""
    media = await suppressed_media(conn, tenant_id=tenant_id, row=row)
    return LawfulStanding(decode_bases(row), frozenset(allowed), media)


async def _standing(conn: asyncpg.Connection, tenant: TenantRow, row: Record) -> LeadStanding:
    return LeadStanding(
        tenant_status=row["t_status"],
        stage=row["engagement_stage"],
        requires_human_review=row["requires_human_review"],
        whatsapp_opted_out=row["whatsapp_opted_out"],
        lawful=await _lawful(conn, tenant.id, tenant.allowed_lawful_bases, row),
    )


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """select_channel: the lead's contact facts, whether its tenant has any available phone, the
    tenant's status, and what the law says of the lead."""

    lead_id: UUID
    contact: LeadContact
    tenant_has_available_phone: bool
    tenant_status: str
    lawful: LawfulStanding


_CHANNEL_CONTEXT = f"""
    SELECT j.lead_id, j.engagement_stage, c.telefon_principal, c.hlr_reachable, c.email_principal,
           c.email_status, j.whatsapp_opted_out, j.email_opted_out, j.last_channel_used,
           EXISTS (SELECT 1 FROM wa_phone_numbers p
                   WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL}) AS capacity,
           t.status AS tenant_status, t.allowed_lawful_bases, {BASES_COLUMNS}, {PROBE_COLUMNS}
    FROM gold_lead_journey j
    {COMPANY_JOIN}
    JOIN tenants t ON t.id = j.tenant_id
    {SUPPRESSION_PROBE}
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""


async def channel_context(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID
) -> ChannelContext | None:
    """The lead of this tenant, or None: a lead of another tenant is not found, by construction."""
    row = await conn.fetchrow(_CHANNEL_CONTEXT, tenant_id, lead_id)
    if row is None:
        return None
    contact = lead_contact(row)
    lawful = await _lawful(conn, tenant_id, row["allowed_lawful_bases"], row)
    return ChannelContext(row["lead_id"], contact, row["capacity"], row["tenant_status"], lawful)


@dataclass(frozen=True, slots=True)
class AllocationContext:
    """allocate_phone: the lead's sticky phone and its tenant's phones, as far as the decision needs them:
    the sticky phone alone when it is kept, else the tenant's available phones and the sticky one."""

    assigned_phone_id: UUID | None
    tenant: TenantRow
    standing: LeadStanding
    phones: list[PhoneRow]


_ALLOCATION_CONTEXT = f"""
    SELECT j.assigned_phone_id, {_TENANT_COLUMNS}, {_STANDING_COLUMNS},
           s.status, s.is_enabled, s.daily_limit, s.queue_slot, s.phone_number, s.warmup_started_on,
           s.warmup_initial_limit, s.warmup_daily_increase,
           pool.ids, pool.limits, pool.slots, pool.numbers, pool.warmup_starts, pool.warmup_initials,
           pool.warmup_increases
    FROM gold_lead_journey j
    {COMPANY_JOIN}
    JOIN tenants t ON t.id = j.tenant_id
    {SUPPRESSION_PROBE}
    LEFT JOIN wa_phone_numbers s ON s.tenant_id = j.tenant_id AND s.id = j.assigned_phone_id
    LEFT JOIN LATERAL (
        SELECT array_agg(p.id ORDER BY p.queue_slot) AS ids, array_agg(p.daily_limit ORDER BY p.queue_slot)
               AS limits, array_agg(p.queue_slot ORDER BY p.queue_slot) AS slots,
               array_agg(p.phone_number ORDER BY p.queue_slot) AS numbers,
               array_agg(p.warmup_started_on ORDER BY p.queue_slot) AS warmup_starts,
               array_agg(p.warmup_initial_limit ORDER BY p.queue_slot) AS warmup_initials,
               array_agg(p.warmup_daily_increase ORDER BY p.queue_slot) AS warmup_increases
        FROM wa_phone_numbers p
        WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL}
          AND NOT ($3 AND s.id IS NOT NULL AND s.status = 'ACTIVE' AND s.is_enabled)
    ) AS pool ON true
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""


async def allocation_context(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID, prefer_existing: bool
) -> AllocationContext | None:
    row = await conn.fetchrow(_ALLOCATION_CONTEXT, tenant_id, lead_id, prefer_existing)
    if row is None:
        return None
    sticky_id = row["assigned_phone_id"]
    # The pool comes as parallel arrays (one row per lead, not per phone), all of them available phones.
    arrays = ("ids", "limits", "slots", "numbers", "warmup_starts", "warmup_initials", "warmup_increases")
    pool = zip(*(row[name] or () for name in arrays), strict=True)
    # Positional (PhoneRow's field order): a keyword call costs several times more, once per phone.
    phones = [
        PhoneRow(pid, tenant_id, number, slot, "ACTIVE", True, limit, started, initial, increase)
        for pid, limit, slot, number, started, initial, increase in pool
        if pid != sticky_id
    ]
    if row["status"] is not None:
        # The sticky phone's own columns are the row's, under PhoneRow's names; only its ids are not.
        phones.append(decode(PhoneRow, ChainMap({"id": sticky_id, "tenant_id": tenant_id}, row)))
    tenant = _tenant(row)
    return AllocationContext(sticky_id, tenant, await _standing(conn, tenant, row), phones)


@dataclass(frozen=True, slots=True)
class RouteContext:
    """route: the lead's tenant and standing, and the phone asked for (None when it is not that
    tenant's)."""

    tenant: TenantRow
    standing: LeadStanding
    assigned_phone_id: UUID | None
    phone: PhoneRow | None
    recipient: str | None  # the lead's number in E.164: what the portfolio budget counts


# Found by the company's primary key, whose tenant is the lead's: the caller's tenant when it names one
# ($1), else whichever the lead has. The phone is looked for in that tenant only.
_ROUTE_CONTEXT = f"""
    SELECT j.assigned_phone_id, {_TENANT_COLUMNS}, {_STANDING_COLUMNS}, {columns(PhoneRow, "p")}
    FROM gold_companies c
    JOIN gold_lead_journey j ON j.tenant_id = c.tenant_id AND j.lead_id = c.id
    JOIN tenants t ON t.id = c.tenant_id
    {SUPPRESSION_PROBE}
    LEFT JOIN wa_phone_numbers p ON p.tenant_id = c.tenant_id AND p.id = $3
    WHERE c.id = $2 AND ($1::uuid IS NULL OR c.tenant_id = $1)
"""
_AVAILABLE_PHONES = f"""
    SELECT {columns(PhoneRow, "p")}
    FROM wa_phone_numbers p WHERE p.tenant_id = $1 AND {AVAILABLE_PHONE_SQL} ORDER BY p.queue_slot
"""


async def route_context(
    conn: asyncpg.Connection, *, tenant_id: UUID | None, lead_id: UUID, phone_id: UUID
) -> RouteContext | None:
    """The lead of `tenant_id`, or of its own tenant when `tenant_id` is None; None when there is none."""
    row = await conn.fetchrow(_ROUTE_CONTEXT, tenant_id, lead_id, phone_id)
    if row is None:
        return None
    tenant = _tenant(row)
    return RouteContext(
        tenant=tenant,
        standing=await _standing(conn, tenant, row),
        assigned_phone_id=row["assigned_phone_id"],
        phone=decode(PhoneRow, row) if row["id"] is not None else None,
        recipient=normalize_phone(row["telefon_principal"]),
    )


async def available_phones(conn: asyncpg.Connection, *, tenant_id: UUID) -> list[PhoneRow]:
    """The tenant's available phones (route's reroute; rare)."""
    return [decode(PhoneRow, row) for row in await conn.fetch(_AVAILABLE_PHONES, tenant_id)]


_SET_STICKY = """
    UPDATE gold_lead_journey SET assigned_phone_id = $3, assigned_at = $5
    WHERE tenant_id = $1 AND lead_id = $2 AND assigned_phone_id IS NOT DISTINCT FROM $4::uuid
    RETURNING id
"""
_STICKY_OF = "SELECT assigned_phone_id FROM gold_lead_journey WHERE tenant_id = $1 AND lead_id = $2"
_PHONE_OWNER = "SELECT tenant_id FROM wa_phone_numbers WHERE id = $1"


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
