"""What the demo seed writes (src/ops/seed.py): a tenant, its companies and journeys in one statement
each, its suppression entries; and the demo reset, which deletes one tenant's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.db.queries.rows import BasesColumns, CompanyColumns, JourneyColumns


@dataclass(frozen=True, slots=True)
class NewTenant:
    id: UUID
    name: str
    timezone: str
    send_window_start: time
    send_window_end: time
    send_days: list[int]
    skip_public_holidays: bool


@dataclass(frozen=True)
class NewLead(JourneyColumns, CompanyColumns, BasesColumns):
    """A company and its journey (the lead id is the company id), with the journey's bases."""

    id: UUID


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
    ("whatsapp_lawful_basis", "text"),
    ("whatsapp_basis_at", "timestamptz"),
    ("whatsapp_basis_source", "text"),
    ("email_lawful_basis", "text"),
    ("email_basis_at", "timestamptz"),
    ("email_basis_source", "text"),
    ("objected_at", "timestamptz"),
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


# The evidence of the demo's messages goes with it: the append-only trigger lets a demo reset through.
_DEMO_RESET = text("SELECT set_config('cerniq.evidence_delete', 'demo-reset', true)")
_DELETE_TENANT = tuple(
    text(f"DELETE FROM {table} WHERE {column} = :tenant_id")
    for table, column in (
        ("outreach_messages", "tenant_id"),
        ("suppressions", "tenant_id"),
        ("dispatch_outbox", "tenant_id"),
        ("gold_lead_journey", "tenant_id"),
        ("gold_companies", "tenant_id"),
        ("wa_phone_numbers", "tenant_id"),
        ("tenants", "id"),
    )
)


async def delete_tenant(conn: AsyncConnection, *, tenant_id: UUID) -> None:
    """A tenant and every row of it, its evidence included (the demo's reset), in the caller's
    transaction."""
    await conn.execute(_DEMO_RESET)
    for statement in _DELETE_TENANT:
        await conn.execute(statement, {"tenant_id": tenant_id})


_INSERT_SUPPRESSION = text(
    "INSERT INTO suppressions (tenant_id, kind, value, channel, reason, created_by) "
    "VALUES (:tenant_id, :kind, :value, :channel, :reason, :created_by)"
)


async def insert_suppression(
    conn: AsyncConnection,
    *,
    tenant_id: UUID,
    kind: str,
    value: str,
    channel: str,
    reason: str,
    created_by: str,
) -> None:
    """One suppression entry, its value already normalised (the demo tenant's)."""
    values = {"kind": kind, "value": value, "channel": channel, "reason": reason, "created_by": created_by}
    await conn.execute(_INSERT_SUPPRESSION, {"tenant_id": tenant_id, **values})


_COUNT_MESSAGES = text("SELECT count(*) FROM outreach_messages WHERE tenant_id = :tenant_id")


async def count_messages(conn: AsyncConnection, *, tenant_id: UUID) -> int:
    """How many messages of the tenant have their evidence row (outreach_messages)."""
    return int((await conn.execute(_COUNT_MESSAGES, {"tenant_id": tenant_id})).scalar_one())
