"""The per-lead jobs' statements (select_channel, allocate_phone, route).

They run thousands of times a second, and SQLAlchemy's pool and execution layer cost more CPU than the
query itself: they run on a plain asyncpg connection from Deps.pg, as prepared statements (asyncpg caches
them per connection), each standing alone (autocommit). Each job loads what its decision needs in one
round trip, and nothing more: rows decoded that a job does not read cost as much as the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from src.db.queries.common import AVAILABLE_PHONE_SQL
from src.db.queries.rows import PhoneRow, columns, decode
from src.domain.channels import LeadContact

_AVAILABLE_IDS = f"""
    (SELECT string_agg(p.id::text, ',') FROM wa_phone_numbers p
     WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL})
"""


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """select_channel: the lead's contact facts, and whether its tenant has any available phone."""

    lead_id: UUID
    contact: LeadContact
    tenant_has_available_phone: bool


_CHANNEL_CONTEXT = f"""
    SELECT j.lead_id, j.engagement_stage, c.telefon_principal, c.hlr_reachable, c.email_principal,
           c.email_status, j.whatsapp_opted_out, j.email_opted_out, j.last_channel_used,
           EXISTS (SELECT 1 FROM wa_phone_numbers p
                   WHERE p.tenant_id = j.tenant_id AND {AVAILABLE_PHONE_SQL}) AS capacity
    FROM gold_lead_journey j
    JOIN gold_companies c ON c.tenant_id = j.tenant_id AND c.id = j.lead_id
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""


async def channel_context(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID
) -> ChannelContext | None:
    """The lead of this tenant, or None: a lead of another tenant is not found, by construction."""
    row = await conn.fetchrow(_CHANNEL_CONTEXT, tenant_id, lead_id)
    if row is None:
        return None
    contact = LeadContact(
        stage=row["engagement_stage"],
        phone=row["telefon_principal"],
        hlr_reachable=row["hlr_reachable"],
        email=row["email_principal"],
        email_status=row["email_status"],
        whatsapp_opted_out=row["whatsapp_opted_out"],
        email_opted_out=row["email_opted_out"],
        last_channel_used=row["last_channel_used"],
    )
    return ChannelContext(row["lead_id"], contact, row["capacity"])


@dataclass(frozen=True, slots=True)
class AllocationContext:
    """allocate_phone: the lead's sticky phone and its tenant's phones, as far as the decision needs them:
    the sticky phone alone when it is kept, else the tenant's available phones and the sticky one."""

    assigned_phone_id: UUID | None
    tenant_timezone: str
    phones: list[PhoneRow]


_ALLOCATION_CONTEXT = f"""
    SELECT j.assigned_phone_id, t.timezone,
           s.status, s.is_enabled, s.daily_limit, s.queue_slot, s.phone_number,
           pool.ids, pool.limits, pool.slots, pool.numbers
    FROM gold_lead_journey j
    JOIN tenants t ON t.id = j.tenant_id
    LEFT JOIN wa_phone_numbers s ON s.tenant_id = j.tenant_id AND s.id = j.assigned_phone_id
    LEFT JOIN LATERAL (
        SELECT array_agg(p.id ORDER BY p.queue_slot) AS ids, array_agg(p.daily_limit ORDER BY p.queue_slot)
               AS limits, array_agg(p.queue_slot ORDER BY p.queue_slot) AS slots,
               array_agg(p.phone_number ORDER BY p.queue_slot) AS numbers
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
    pool = zip(row["ids"] or (), row["limits"] or (), row["slots"] or (), row["numbers"] or (), strict=True)
    phones = [
        PhoneRow(
            id=pid,
            tenant_id=tenant_id,
            phone_number=number,
            queue_slot=slot,
            status="ACTIVE",
            is_enabled=True,
            daily_limit=limit,
        )
        for pid, limit, slot, number in pool
        if pid != sticky_id
    ]
    if row["status"] is not None:
        phones.append(
            PhoneRow(
                id=sticky_id,
                tenant_id=tenant_id,
                phone_number=row["phone_number"],
                queue_slot=row["queue_slot"],
                status=row["status"],
                is_enabled=row["is_enabled"],
                daily_limit=row["daily_limit"],
            )
        )
    return AllocationContext(sticky_id, row["timezone"], phones)


@dataclass(frozen=True, slots=True)
class RouteContext:
    """route: the lead, the phone asked for (None when it is not the tenant's), and the ids of the
    tenant's available phones (where an earlier try's reservation may be reused)."""

    whatsapp_opted_out: bool
    assigned_phone_id: UUID | None
    tenant_timezone: str
    phone: PhoneRow | None
    available_ids: str


_ROUTE_CONTEXT = f"""
    SELECT j.whatsapp_opted_out, j.assigned_phone_id, t.timezone, {columns(PhoneRow, "p")},
           coalesce({_AVAILABLE_IDS}, '') AS available_ids
    FROM gold_lead_journey j
    JOIN tenants t ON t.id = j.tenant_id
    LEFT JOIN wa_phone_numbers p ON p.tenant_id = j.tenant_id AND p.id = $3
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""
_AVAILABLE_PHONES = f"""
    SELECT {columns(PhoneRow, "p")}
    FROM wa_phone_numbers p WHERE p.tenant_id = $1 AND {AVAILABLE_PHONE_SQL} ORDER BY p.queue_slot
"""


async def route_context(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID, phone_id: UUID
) -> RouteContext | None:
    row = await conn.fetchrow(_ROUTE_CONTEXT, tenant_id, lead_id, phone_id)
    if row is None:
        return None
    return RouteContext(
        whatsapp_opted_out=row["whatsapp_opted_out"],
        assigned_phone_id=row["assigned_phone_id"],
        tenant_timezone=row["timezone"],
        phone=decode(PhoneRow, row) if row["id"] is not None else None,
        available_ids=row["available_ids"],
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
