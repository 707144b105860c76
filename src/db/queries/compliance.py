"""The ops tool's statements for the law (src/ops/suppress.py, basis.py, objection.py, audit.py): suppression
entries, lawful bases, objections. Each takes a plain asyncpg connection and never commits: the command
owns the transaction, so an import writes all of its rows or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from uuid import UUID

import asyncpg

from src.db.queries.lawful import BASES_COLUMNS
from src.db.queries.rows import BasesColumns, OutboxRow, arrays, columns, decode


@dataclass(frozen=True, slots=True)
class NewSuppression:
    kind: str
    value: str  # normalised (src/domain/suppression.py)
    channel: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    id: int
    tenant_id: UUID | None
    channel: str
    kind: str
    value: str
    reason: str | None
    created_at: datetime
    created_by: str | None


_INSERT_SUPPRESSIONS = """
    INSERT INTO suppressions (tenant_id, kind, value, channel, reason, created_by)
    SELECT $1, u.kind, u.value, u.channel, u.reason, $6
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(kind, value, channel, reason)
    ON CONFLICT DO NOTHING
"""


async def insert_suppressions(
    conn: asyncpg.Connection, *, tenant_id: UUID | None, entries: Sequence[NewSuppression], created_by: str
) -> int:
    """Add the entries (tenant None: every tenant's) in one statement; returns how many were new (an entry
    already there is left as it is)."""
    status: str = await conn.execute(
        _INSERT_SUPPRESSIONS,
        tenant_id,
        *arrays(entries, "kind", "value", "channel", "reason"),
        created_by,
    )
    return int(status.split()[-1])


_DELETE_SUPPRESSIONS = """
    DELETE FROM suppressions
    WHERE kind = $1 AND value = $2 AND tenant_id IS NOT DISTINCT FROM $3
      AND ($4::text IS NULL OR channel = $4)
    RETURNING channel
"""


async def delete_suppressions(
    conn: asyncpg.Connection, *, tenant_id: UUID | None, kind: str, value: str, channel: str | None
) -> list[str]:
    """Remove the entry of that scope for `channel`, or for every channel when None; the channels removed."""
    return [row["channel"] for row in await conn.fetch(_DELETE_SUPPRESSIONS, kind, value, tenant_id, channel)]


@cache
def _list_statement(scope: str) -> str:
    where = {"tenant": "tenant_id = $1", "tenant+global": "(tenant_id = $1 OR tenant_id IS NULL)"}.get(
        scope, "tenant_id IS NULL"
    )
    order = "tenant_id NULLS FIRST, kind, value, channel"
    return f"SELECT {columns(SuppressionRow)} FROM suppressions WHERE {where} ORDER BY {order}"


async def list_suppressions(
    conn: asyncpg.Connection, *, tenant_id: UUID | None, with_global: bool
) -> list[SuppressionRow]:
    """A tenant's entries (and the global ones with `with_global`), or the global ones (tenant None)."""
    if tenant_id is None:
        rows = await conn.fetch(_list_statement("global"))
    else:
        rows = await conn.fetch(_list_statement("tenant+global" if with_global else "tenant"), tenant_id)
    return [decode(SuppressionRow, row) for row in rows]


@dataclass(frozen=True, slots=True)
class BasisUpdate:
    """A lead's basis for one medium or both (None: that medium stays as it is)."""

    lead_id: UUID
    whatsapp: tuple[str, datetime, str] | None  # basis, at, source
    email: tuple[str, datetime, str] | None


_SET_BASES = """
    UPDATE gold_lead_journey AS j SET
        whatsapp_lawful_basis = CASE WHEN u.wa THEN u.wa_basis ELSE j.whatsapp_lawful_basis END,
        whatsapp_basis_at = CASE WHEN u.wa THEN u.wa_at ELSE j.whatsapp_basis_at END,
        whatsapp_basis_source = CASE WHEN u.wa THEN u.wa_source ELSE j.whatsapp_basis_source END,
        email_lawful_basis = CASE WHEN u.em THEN u.em_basis ELSE j.email_lawful_basis END,
        email_basis_at = CASE WHEN u.em THEN u.em_at ELSE j.email_basis_at END,
        email_basis_source = CASE WHEN u.em THEN u.em_source ELSE j.email_basis_source END
    FROM unnest($2::uuid[], $3::bool[], $4::text[], $5::timestamptz[], $6::text[],
                $7::bool[], $8::text[], $9::timestamptz[], $10::text[])
         AS u(lead_id, wa, wa_basis, wa_at, wa_source, em, em_basis, em_at, em_source)
    WHERE j.tenant_id = $1 AND j.lead_id = u.lead_id
    RETURNING j.lead_id
"""


async def set_bases(
    conn: asyncpg.Connection, *, tenant_id: UUID, updates: Sequence[BasisUpdate]
) -> set[UUID]:
    """Record the bases in one statement (one update per lead: the caller merges a lead's media); returns
    the leads found, so the caller can refuse the others."""
    wa = [u.whatsapp for u in updates]
    em = [u.email for u in updates]
    rows = await conn.fetch(
        _SET_BASES,
        tenant_id,
        [u.lead_id for u in updates],
        [w is not None for w in wa],
        [w[0] if w else None for w in wa],
        [w[1] if w else None for w in wa],
        [w[2] if w else None for w in wa],
        [e is not None for e in em],
        [e[0] if e else None for e in em],
        [e[1] if e else None for e in em],
        [e[2] if e else None for e in em],
    )
    return {row["lead_id"] for row in rows}


# An objection is for good: a second one keeps the first instant.
_OBJECT = """
    UPDATE gold_lead_journey SET objected_at = coalesce(objected_at, $3)
    WHERE tenant_id = $1 AND lead_id = $2
    RETURNING objected_at
"""


async def record_objection(
    conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID, at: datetime
) -> datetime | None:
    """The lead's objection instant (an earlier one stays); None when the tenant has no such lead. The
    UPDATE waits for a dispatch that holds the lead's row, so that dispatch's batch is committed first."""
    objected: datetime | None = await conn.fetchval(_OBJECT, tenant_id, lead_id, at)
    return objected


# Not SKIP LOCKED: a dispatch publishing its batch holds its row, and this waits until it is gone.
_TENANT_OUTBOX = (
    f"SELECT {columns(OutboxRow)} FROM dispatch_outbox WHERE tenant_id = $1 ORDER BY id FOR UPDATE"
)


async def claim_tenant_outbox(conn: asyncpg.Connection, *, tenant_id: UUID) -> list[OutboxRow]:
    """The tenant's committed batches still on their way to their queues, locked until the transaction
    ends; waits for a dispatch that is publishing one."""
    return [decode(OutboxRow, row) for row in await conn.fetch(_TENANT_OUTBOX, tenant_id)]


@dataclass(frozen=True, slots=True)
class LeadLaw(BasesColumns):
    """A lead as the audit shows it: its company, its bases and their evidence, its objection."""

    denumire: str


_LEAD_LAW = f"""
    SELECT c.denumire, {BASES_COLUMNS}
    FROM gold_lead_journey j JOIN gold_companies c ON c.tenant_id = j.tenant_id AND c.id = j.lead_id
    WHERE j.tenant_id = $1 AND j.lead_id = $2
"""


async def lead_law(conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID) -> LeadLaw | None:
    row = await conn.fetchrow(_LEAD_LAW, tenant_id, lead_id)
    return decode(LeadLaw, row) if row else None


_ALLOW_BASES = "UPDATE tenants SET allowed_lawful_bases = $2::text[] WHERE id = $1"
# The tenant's due leads, and those of them with no basis the list allows on either channel (with the
# list empty, none: the gate is off).
_HELD_BY_BASES = """
    SELECT count(*) AS due,
           count(*) FILTER (WHERE cardinality($2::text[]) > 0
                              AND NOT coalesce(j.whatsapp_lawful_basis = ANY($2::text[]), false)
                              AND NOT coalesce(j.email_lawful_basis = ANY($2::text[]), false)) AS held
    FROM gold_lead_journey j
    WHERE j.tenant_id = $1 AND j.engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')
      AND NOT j.requires_human_review AND j.objected_at IS NULL
"""


async def allow_bases(conn: asyncpg.Connection, *, tenant_id: UUID, bases: Sequence[str]) -> None:
    """Set the tenant's allowed bases."""
    await conn.execute(_ALLOW_BASES, tenant_id, list(bases))


async def held_by_bases(
    conn: asyncpg.Connection, *, tenant_id: UUID, bases: Sequence[str]
) -> tuple[int, int]:
    """(leads in a due stage, those of them that no channel would reach under `bases`)."""
    row = await conn.fetchrow(_HELD_BY_BASES, tenant_id, list(bases))
    assert row is not None
    return int(row["due"]), int(row["held"])
