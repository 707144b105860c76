"""outreach_messages: the evidence of every message put on an output queue, with the basis it went out on
(GDPR art. 5(2)). Rows are only ever inserted; the retention delete is the one way out (a trigger of
migration 0005 refuses any other UPDATE or DELETE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from src.db.queries.rows import columns, decode
from src.domain.lawful import Basis


@dataclass(frozen=True, slots=True)
class MessageTarget:
    """Where a message went: the columns an evidence row names it by."""

    tenant_id: UUID
    lead_id: UUID
    channel: str
    phone_id: UUID | None
    queue: str
    job_id: str


@dataclass(frozen=True, slots=True)
class MessageRecord(MessageTarget):
    """One message as its evidence row holds it."""

    basis: Basis
    scheduled_at: datetime


_MESSAGE_ARRAYS = ("uuid", "text", "uuid", "text", "text", "text", "timestamptz", "text", "timestamptz")


def record_messages_sql(*, tenant: str | None, first: int) -> str:
    """One row per message of a batch, from MessageBatch.columns(): `tenant` is the tenant's parameter,
    `first` the number of the first column's (dispatch sends it with the journeys' update). With `tenant`
    None, the first column is each row's tenant (MessageBatch.columns(tenants=...)): several tenants'
    batches in one statement."""
    kinds = _MESSAGE_ARRAYS if tenant is not None else ("uuid", *_MESSAGE_ARRAYS)
    arrays = ", ".join(f"${first + n}::{kind}[]" for n, kind in enumerate(kinds))
    return f"""
        INSERT INTO outreach_messages (tenant_id, lead_id, channel, phone_id, queue, job_id, basis, basis_at,
                                       basis_source, scheduled_at)
        SELECT {tenant + ", " if tenant is not None else ""}u.* FROM unnest({arrays}) AS u
    """


# One evidence row of a batch: lead id, channel, phone id, queue, job id, basis, basis at, basis source,
# scheduled at (a WhatsApp message's paced slot; the dispatch instant for an e-mail).
MessageRow9 = tuple[UUID, str, UUID | None, str, str, str | None, datetime | None, str | None, datetime]


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """The evidence rows of a dispatch batch's messages, sent as parallel columns (record_messages_sql)."""

    rows: list[MessageRow9]

    def __len__(self) -> int:
        return len(self.rows)

    def columns(self) -> tuple[Any, ...]:
        """The statement's arguments, in record_messages_sql's order: one list per column."""
        return tuple(list(column) for column in zip(*self.rows, strict=True))


@dataclass(frozen=True, slots=True)
class TenantMessages:
    """Several tenants' MessageBatches, for one statement (record_messages_sql with `tenant` None)."""

    batches: list[tuple[UUID, MessageBatch]]

    def __len__(self) -> int:
        return sum(len(batch) for _, batch in self.batches)

    def columns(self) -> tuple[Any, ...]:
        rows = [(tenant, *row) for tenant, batch in self.batches for row in batch.rows]
        return tuple(list(column) for column in zip(*rows, strict=True))


class Recorded(StrEnum):
    WRITTEN = "WRITTEN"
    ALREADY = "ALREADY"  # a retried router job: its first try wrote the row
    OBJECTED = "OBJECTED"  # the lead objected since the job read it: nothing written


# The lead's row is locked FOR SHARE, which an objection's UPDATE waits for (and which waits for it): either
# this row commits before the objection does, and `cerniq-ops object` finds it and withdraws its job, or
# the objection commits first and this statement sees it, writes nothing, and the job withdraws its own.
_RECORD_ROUTED = """
    WITH lead AS (
        SELECT objected_at FROM gold_lead_journey WHERE tenant_id = $1 AND lead_id = $2 FOR SHARE
    ), earlier AS (
        SELECT 1 FROM outreach_messages WHERE tenant_id = $1 AND lead_id = $2 AND job_id = $6
    ), written AS (
        INSERT INTO outreach_messages (tenant_id, lead_id, channel, phone_id, queue, job_id, basis, basis_at,
                                       basis_source, scheduled_at)
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM lead
        WHERE lead.objected_at IS NULL AND NOT EXISTS (SELECT 1 FROM earlier)
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM lead WHERE objected_at IS NOT NULL) AS objected,
           EXISTS (SELECT 1 FROM earlier) AS already
"""


async def record_routed_message(conn: asyncpg.Connection, *, record: MessageRecord) -> Recorded:
    """The row of a message route has enqueued, unless its lead objected meanwhile or an earlier try of
    the same router job wrote it."""
    row = await conn.fetchrow(
        _RECORD_ROUTED,
        record.tenant_id,
        record.lead_id,
        record.channel,
        record.phone_id,
        record.queue,
        record.job_id,
        record.basis.basis,
        record.basis.at,
        record.basis.source,
        record.scheduled_at,
    )
    assert row is not None
    if row["objected"]:
        return Recorded.OBJECTED
    return Recorded.ALREADY if row["already"] else Recorded.WRITTEN


_ALLOW_RETENTION = "SELECT set_config('cerniq.evidence_delete', 'retention', true)"
# The oldest rows first, by the database's clock (the one that wrote created_at); a bounded batch, and
# rows another retention delete holds are skipped.
_DELETE_EXPIRED = """
    DELETE FROM outreach_messages WHERE id IN (
        SELECT id FROM outreach_messages
        WHERE created_at < now() - make_interval(days => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED
    )
"""


async def delete_expired_messages(conn: asyncpg.Connection, *, retention_days: int, limit: int) -> int:
    """Delete up to `limit` rows older than `retention_days`; returns how many. Runs in a transaction of
    its own: the trigger lets the DELETE through only in a transaction that names itself the retention."""
    async with conn.transaction():
        await conn.execute(_ALLOW_RETENTION)
        status: str = await conn.execute(_DELETE_EXPIRED, retention_days, limit)
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class MessageRow(MessageTarget):
    """An evidence row as the audit reads it."""

    id: int
    basis: str | None
    basis_at: datetime | None
    basis_source: str | None
    scheduled_at: datetime
    created_at: datetime


_LEAD_MESSAGES = (
    f"SELECT {columns(MessageRow)} FROM outreach_messages WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id"
)


async def lead_messages(conn: asyncpg.Connection, *, tenant_id: UUID, lead_id: UUID) -> list[MessageRow]:
    """Every message recorded for a lead, oldest first (the audit; the jobs an objection withdraws)."""
    return [decode(MessageRow, row) for row in await conn.fetch(_LEAD_MESSAGES, tenant_id, lead_id)]
