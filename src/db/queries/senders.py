"""What the ops tool reads of the sender safeguards (migration 0006): a tenant's pacing and portfolio
limit, and its phones with their warm-up. Plain asyncpg, like the dispatcher's statements it runs beside
(`cerniq-ops forecast` reads the due backlog with `due_leads`)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from src.db.queries.ops import PHONE_OVERVIEW_COLUMNS, PhoneOverview
from src.db.queries.rows import columns, decode


@dataclass(frozen=True, slots=True)
class SenderSettings:
    wa_min_gap_s: int
    wa_jitter_s: int
    wa_portfolio_limit: int | None


_SETTINGS = f"SELECT {columns(SenderSettings)} FROM tenants WHERE id = $1"
_TENANT_PHONES = (
    f"SELECT {PHONE_OVERVIEW_COLUMNS} FROM wa_phone_numbers p JOIN tenants t ON t.id = p.tenant_id "
    "WHERE $1::uuid IS NULL OR p.tenant_id = $1 ORDER BY t.id, p.queue_slot"
)


async def sender_settings(conn: asyncpg.Connection, *, tenant_id: UUID) -> SenderSettings | None:
    row = await conn.fetchrow(_SETTINGS, tenant_id)
    return decode(SenderSettings, row) if row else None


async def sender_phones(conn: asyncpg.Connection, *, tenant_id: UUID | None) -> list[PhoneOverview]:
    """The phones with their warm-up, of one tenant or of all (None), by tenant and queue slot."""
    return [decode(PhoneOverview, row) for row in await conn.fetch(_TENANT_PHONES, tenant_id)]
