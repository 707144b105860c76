"""The dispatcher's statements: tenants, their phones, the due leads, the journey update, the outbox.

They run on a plain asyncpg connection (Deps.db), in the transaction the dispatch opens with
`conn.transaction()`: a batch is a handful of large statements, and SQLAlchemy's execution layer cost as
much as PostgreSQL's work on the thousand rows they return (bench/dispatch_throughput.py). Parameters are
positional ($1, ...); asyncpg prepares and caches each statement per connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

import asyncpg

from src.db.queries.common import COMPANY_COLUMNS, DUE_STAGES_SQL, NOT_OBJECTED_SQL, PRIORITIES
from src.db.queries.evidence import MessageBatch, record_messages_sql
from src.db.queries.lawful import BASES_COLUMNS, decode_bases
from src.db.queries.rows import (
    TENANT_COLUMNS,
    JourneyUpdate,
    OutboxRow,
    OutboxWaiting,
    PhoneRow,
    TenantRow,
    arrays,
    columns,
    decode,
    lead_contact,
)
from src.domain.dispatch import DueLead

_LOAD_TENANT = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
_ACTIVE_TENANTS = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE status = 'ACTIVE' ORDER BY id"
_TENANT_PHONES = f"SELECT {columns(PhoneRow)} FROM wa_phone_numbers WHERE tenant_id = $1 ORDER BY queue_slot"


async def load_tenant(conn: asyncpg.Connection, *, tenant_id: UUID) -> TenantRow | None:
    row = await conn.fetchrow(_LOAD_TENANT, tenant_id)
    return decode(TenantRow, row) if row else None


async def active_tenants(conn: asyncpg.Connection) -> list[TenantRow]:
    return [decode(TenantRow, row) for row in await conn.fetch(_ACTIVE_TENANTS)]


async def tenant_phones(conn: asyncpg.Connection, *, tenant_id: UUID) -> list[PhoneRow]:
    return [decode(PhoneRow, row) for row in await conn.fetch(_TENANT_PHONES, tenant_id)]


# What dispatch reads of a due journey; with COMPANY_COLUMNS, what `_due_lead` decodes by name.
_BRANCH_COLUMNS = (
    "j.id, j.tenant_id, j.lead_id, j.next_action_at, j.engagement_stage, j.assigned_phone_id, "
    "j.whatsapp_opted_out, j.email_opted_out, j.current_sequence_id, j.sequence_step, j.last_channel_used, "
    + BASES_COLUMNS
)


@cache
def due_leads_statement(priority: str | None, with_sequence: bool, lock: bool) -> str:
    """Due leads, priority first; within a priority, the leads due by now, oldest next_action_at first,
    then the never-scheduled ones (next_action_at NULL: PostgreSQL's ascending order puts them last, and
    so does the contract). A big import of new leads must not hold back the overdue follow-ups of running
    conversations. $1 tenant, $2 now, $3 limit, $4 sequence id when filtered.

    One branch per priority and per "due by now" / "never scheduled", in that order, each a range scan of
    ix_gold_lead_journey_due that stops after $3 rows, so the cost does not grow with the rows
    scheduled in the future. Row-locking queries never run in parallel, so Append returns the branches
    in the order written, and the outer LIMIT stops the later branches from running (or locking) at all.
    The "never" branch is ordered too, although every key in it is NULL: without the order the planner
    may build a bitmap of the whole never-scheduled range (a big import makes it large) before it
    returns a row; with it, it reads the index in order and stops after $3, like the other branches.
    The company of each selected lead is one index lookup: the LATERAL subquery's LIMIT 1 (the pair is
    unique anyway) keeps the planner from hashing all of the tenant's companies for a batch.
    """
    sequence = " AND j.current_sequence_id = $4" if with_sequence else ""
    locking = " FOR UPDATE OF j SKIP LOCKED" if lock else ""
    branches = []
    for number, (prio, due) in enumerate(
        (p, d) for p in (PRIORITIES if priority is None else (priority,)) for d in ("due", "never")
    ):
        condition = "j.next_action_at IS NULL" if due == "never" else "j.next_action_at <= $2"
        branches.append(
            f"SELECT * FROM (SELECT {_BRANCH_COLUMNS}, {number} AS branch FROM gold_lead_journey j"
            f" WHERE j.tenant_id = $1 AND j.priority = '{prio}' AND {condition}"
            f" AND {DUE_STAGES_SQL} AND NOT j.requires_human_review AND {NOT_OBJECTED_SQL}{sequence}"
            f" ORDER BY j.next_action_at LIMIT $3{locking}) AS b{number}"
        )
    union = "\n UNION ALL ".join(branches)
    # $2 appears only in the "due by now" branches; the cast names its type for every variant.
    return f"""
        SELECT d.*, {COMPANY_COLUMNS}
        FROM ({union} LIMIT $3) AS d
        CROSS JOIN LATERAL (
            SELECT {COMPANY_COLUMNS} FROM gold_companies c
            WHERE c.tenant_id = d.tenant_id AND c.id = d.lead_id LIMIT 1
        ) AS c
        WHERE $2::timestamptz IS NOT NULL
        ORDER BY d.branch, d.next_action_at
    """


@dataclass(frozen=True, slots=True)
class DueSelection:
    """Which due leads a dispatch asks for: the tenant's, due at `now`, the filters of its job."""

    tenant_id: UUID
    now: datetime
    limit: int
    priority: str | None = None
    sequence_id: str | None = None


async def due_leads(conn: asyncpg.Connection, selection: DueSelection, *, lock: bool = True) -> list[DueLead]:
    """The next `selection.limit` due leads; with `lock`, rows other dispatchers hold are skipped and the
    returned rows stay locked until the transaction ends (the caller's: locking needs one)."""
    if lock and not conn.is_in_transaction():
        raise RuntimeError("due_leads(lock=True) outside a transaction would release its locks at once")
    statement = due_leads_statement(selection.priority, selection.sequence_id is not None, lock)
    args: list[Any] = [selection.tenant_id, selection.now, selection.limit]
    if selection.sequence_id is not None:
        args.append(selection.sequence_id)
    return [_due_lead(row) for row in await conn.fetch(statement, *args)]


# DueLead's plain fields and the columns they are read from; contact and bases are decoded by their own.
_DUE_LEAD_COLUMNS = (
    ("journey_id", "id"),
    ("lead_id", "lead_id"),
    ("sticky_phone_id", "assigned_phone_id"),
    ("sequence_id", "current_sequence_id"),
    ("sequence_step", "sequence_step"),
    ("company_name", "denumire"),
    ("contact_name", "contact_principal_nume"),
    ("judet", "judet"),
    ("localitate", "localitate"),
)


def _due_lead(row: Mapping[str, Any]) -> DueLead:
    """A selected row as dispatch decides on it, by column name."""
    plain = {field: row[column] for field, column in _DUE_LEAD_COLUMNS}
    return DueLead(contact=lead_contact(row), bases=decode_bases(row), **plain)


@cache
def _review_count_statement(with_priority: bool, with_sequence: bool) -> str:
    filters, position = "", 3
    if with_priority:
        filters += f" AND j.priority = ${position}"
        position += 1
    if with_sequence:
        filters += f" AND j.current_sequence_id = ${position}"
    return f"""
        SELECT count(*) FROM gold_lead_journey j
        WHERE j.tenant_id = $1 AND {DUE_STAGES_SQL} AND j.requires_human_review
          AND (j.next_action_at IS NULL OR j.next_action_at <= $2){filters}
    """


async def count_due_held_for_review(conn: asyncpg.Connection, selection: DueSelection) -> int:
    """Leads the selection would take but for `requires_human_review` (skippedHumanReview)."""
    args: list[Any] = [selection.tenant_id, selection.now]
    args += [value for value in (selection.priority, selection.sequence_id) if value is not None]
    statement = _review_count_statement(selection.priority is not None, selection.sequence_id is not None)
    return int(await conn.fetchval(statement, *args))


_UPDATE_JOURNEYS = """
    UPDATE gold_lead_journey AS j SET
        assigned_phone_id = COALESCE(u.phone_id, j.assigned_phone_id),
        assigned_at = CASE WHEN u.phone_id IS NOT NULL AND u.phone_id IS DISTINCT FROM j.assigned_phone_id
                           THEN $2 ELSE j.assigned_at END,
        last_dispatched_at = CASE WHEN u.channel IS NULL THEN j.last_dispatched_at ELSE $2 END,
        last_channel_used = COALESCE(u.channel, j.last_channel_used),
        next_action_at = u.next_action_at
    FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[])
         AS u(id, phone_id, channel, next_action_at)
    WHERE j.id = u.id AND j.id = ANY($3::uuid[]) AND j.tenant_id = $1
"""


# The evidence of the batch's messages, inserted by the same statement as the journeys' update: one round
# trip, which dispatch overlaps with encoding its jobs ($7.. the columns of queries.evidence.MessageBatch).
_UPDATE_JOURNEYS_RECORDING = (
    f"WITH recorded AS ({record_messages_sql(tenant='$1', first=7)}) {_UPDATE_JOURNEYS}"
)


async def update_journeys(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    now: datetime,
    updates: Sequence[JourneyUpdate],
    messages: MessageBatch | None = None,
) -> None:
    """One UPDATE for the whole batch: sticky phone, last dispatch, last channel, next action; and, in the
    same statement, one evidence row per message of `messages` (outreach_messages)."""
    if not updates:
        return
    recorded = messages.columns() if messages else ()
    await conn.execute(
        _UPDATE_JOURNEYS_RECORDING if recorded else _UPDATE_JOURNEYS,
        tenant_id,
        now,
        *arrays(updates, "journey_id", "phone_id", "channel", "next_action_at"),
        *recorded,
    )


_INSERT_OUTBOX = (
    "INSERT INTO dispatch_outbox (tenant_id, dispatch_job_id, job_count, jobs) VALUES ($1, $2, $3, $4) "
    "RETURNING id"
)
_TAKE_OUTBOX = (
    "DELETE FROM dispatch_outbox WHERE id = "
    "(SELECT id FROM dispatch_outbox WHERE id = $1 FOR UPDATE SKIP LOCKED) RETURNING id"
)
_DELETE_OUTBOX = "DELETE FROM dispatch_outbox WHERE id = $1"


@cache
def _outbox_waiting_statement(for_tenant: bool) -> str:
    # The grace is measured on the database's clock, the one that wrote created_at (now(), at the
    # dispatch's transaction start): the service's clock may differ from it (a test fixes or shifts it).
    tenant = " AND tenant_id = $4" if for_tenant else ""
    return (
        "SELECT id, dispatch_job_id, "
        "       created_at <= clock_timestamp() - make_interval(secs => $1) AS past_grace "
        f"FROM dispatch_outbox WHERE id > $2{tenant} ORDER BY id LIMIT $3"
    )


_CLAIM_OUTBOX = (
    f"SELECT {columns(OutboxRow)} FROM dispatch_outbox WHERE id = ANY($1::bigint[]) "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)


async def insert_outbox(
    conn: asyncpg.Connection, *, tenant_id: UUID, dispatch_job_id: str, job_count: int, jobs: bytes
) -> int:
    """One row for a dispatch batch's jobs (job_writer.encode_batch), in the dispatch's transaction."""
    outbox_id: int = await conn.fetchval(_INSERT_OUTBOX, tenant_id, dispatch_job_id, job_count, jobs)
    return outbox_id


async def take_outbox(conn: asyncpg.Connection, *, outbox_id: int) -> bool:
    """Delete the row; False when a relay holds it (or has deleted it). Like a claim, the row stays locked
    until the transaction ends, and a rollback puts it back: enqueue its jobs before committing."""
    return await conn.fetchval(_TAKE_OUTBOX, outbox_id) is not None


async def outbox_waiting(
    conn: asyncpg.Connection, *, grace_s: float, after_id: int, limit: int, tenant_id: UUID | None = None
) -> list[OutboxWaiting]:
    """The outbox rows after `after_id` (all tenants', or one's), unlocked, in id order: whose they are,
    and whether they are older than `grace_s` by the database's clock."""
    args: list[Any] = [grace_s, after_id, limit] + ([tenant_id] if tenant_id is not None else [])
    statement = _outbox_waiting_statement(tenant_id is not None)
    return [decode(OutboxWaiting, row) for row in await conn.fetch(statement, *args)]


async def claim_outbox(conn: asyncpg.Connection, *, outbox_ids: Sequence[int]) -> list[OutboxRow]:
    """Lock the rows that are still there and that no one else holds (a publishing dispatch, another
    relay), until the caller's transaction ends; in id order."""
    return [decode(OutboxRow, row) for row in await conn.fetch(_CLAIM_OUTBOX, list(outbox_ids))]


async def delete_outbox(conn: asyncpg.Connection, *, outbox_id: int) -> None:
    await conn.execute(_DELETE_OUTBOX, outbox_id)
