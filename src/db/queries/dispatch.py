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
from src.db.queries.evidence import MessageBatch, TenantMessages, record_messages_sql
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
_LOAD_TENANTS = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY($1::uuid[]) ORDER BY id"
_ACTIVE_TENANTS = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE status = 'ACTIVE' ORDER BY id"
_TENANT_PHONES = f"SELECT {columns(PhoneRow)} FROM wa_phone_numbers WHERE tenant_id = $1 ORDER BY queue_slot"
_TENANTS_PHONES = (
    f"SELECT {columns(PhoneRow)} FROM wa_phone_numbers WHERE tenant_id = ANY($1::uuid[]) "
    "ORDER BY tenant_id, queue_slot"
)


async def load_tenant(conn: asyncpg.Connection, *, tenant_id: UUID) -> TenantRow | None:
    row = await conn.fetchrow(_LOAD_TENANT, tenant_id)
    return decode(TenantRow, row) if row else None


async def load_tenants(conn: asyncpg.Connection, *, tenant_ids: Sequence[UUID]) -> list[TenantRow]:
    """The rows of these tenants that exist, in id order."""
    return [decode(TenantRow, row) for row in await conn.fetch(_LOAD_TENANTS, list(tenant_ids))]


async def active_tenants(conn: asyncpg.Connection) -> list[TenantRow]:
    return [decode(TenantRow, row) for row in await conn.fetch(_ACTIVE_TENANTS)]


async def tenant_phones(conn: asyncpg.Connection, *, tenant_id: UUID) -> list[PhoneRow]:
    return [decode(PhoneRow, row) for row in await conn.fetch(_TENANT_PHONES, tenant_id)]


async def phones_of_tenants(
    conn: asyncpg.Connection, *, tenant_ids: Sequence[UUID]
) -> dict[UUID, list[PhoneRow]]:
    """`tenant_phones` of each of these tenants, in one statement (a tenant without phones: no key)."""
    phones: dict[UUID, list[PhoneRow]] = {}
    for row in await conn.fetch(_TENANTS_PHONES, list(tenant_ids)):
        phone = decode(PhoneRow, row)
        phones.setdefault(phone.tenant_id, []).append(phone)
    return phones


# What dispatch reads of a due journey; with COMPANY_COLUMNS, what `_due_lead` decodes by name.
_BRANCH_COLUMNS = (
    "j.id, j.tenant_id, j.lead_id, j.next_action_at, j.engagement_stage, j.assigned_phone_id, "
    "j.whatsapp_opted_out, j.email_opted_out, j.current_sequence_id, j.sequence_step, j.last_channel_used, "
    + BASES_COLUMNS
)


@cache
def due_leads_statement(priority: str | None, with_sequence: bool, lock: bool, many: bool = False) -> str:
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

    `many`: the same selection for each tenant of an array ($1 uuid[]), each tenant's own LIMIT $3, in
    one statement: the branches run as a LATERAL subquery per tenant, and rows come tenant by tenant.
    """
    tenant = "t.tid" if many else "$1"
    sequence = " AND j.current_sequence_id = $4" if with_sequence else ""
    locking = " FOR UPDATE OF j SKIP LOCKED" if lock else ""
    branches = []
    for number, (prio, due) in enumerate(
        (p, d) for p in (PRIORITIES if priority is None else (priority,)) for d in ("due", "never")
    ):
        condition = "j.next_action_at IS NULL" if due == "never" else "j.next_action_at <= $2"
        branches.append(
            f"SELECT * FROM (SELECT {_BRANCH_COLUMNS}, {number} AS branch FROM gold_lead_journey j"
            f" WHERE j.tenant_id = {tenant} AND j.priority = '{prio}' AND {condition}"
            f" AND {DUE_STAGES_SQL} AND NOT j.requires_human_review AND {NOT_OBJECTED_SQL}{sequence}"
            f" ORDER BY j.next_action_at LIMIT $3{locking}) AS b{number}"
        )
    union = "\n UNION ALL ".join(branches)
    # $2 appears only in the "due by now" branches; the cast names its type for every variant.
    if many:
        return f"""
        SELECT d.*, {COMPANY_COLUMNS}
        FROM unnest($1::uuid[]) AS t(tid)
        CROSS JOIN LATERAL ({union} LIMIT $3) AS d
        CROSS JOIN LATERAL (
            SELECT {COMPANY_COLUMNS} FROM gold_companies c
            WHERE c.tenant_id = d.tenant_id AND c.id = d.lead_id LIMIT 1
        ) AS c
        WHERE $2::timestamptz IS NOT NULL
        ORDER BY d.tenant_id, d.branch, d.next_action_at
    """
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


async def due_leads_of_tenants(
    conn: asyncpg.Connection, selection: DueSelection, *, tenant_ids: Sequence[UUID], lock: bool = True
) -> dict[UUID, list[DueLead]]:
    """`due_leads` of each of these tenants, in one statement: the selection's filters and limit apply to
    each tenant alone (its `tenant_id` is ignored). A tenant with no due lead: no key."""
    if lock and not conn.is_in_transaction():
        raise RuntimeError("due_leads_of_tenants outside a transaction would release its locks at once")
    statement = due_leads_statement(selection.priority, selection.sequence_id is not None, lock, True)
    args: list[Any] = [list(tenant_ids), selection.now, selection.limit]
    if selection.sequence_id is not None:
        args.append(selection.sequence_id)
    leads: dict[UUID, list[DueLead]] = {}
    for row in await conn.fetch(statement, *args):
        leads.setdefault(row["tenant_id"], []).append(_due_lead(row))
    return leads


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
def _review_count_statement(with_priority: bool, with_sequence: bool, many: bool = False) -> str:
    filters, position = "", 3
    if with_priority:
        filters += f" AND j.priority = ${position}"
        position += 1
    if with_sequence:
        filters += f" AND j.current_sequence_id = ${position}"
    due = f"""{DUE_STAGES_SQL} AND j.requires_human_review
          AND (j.next_action_at IS NULL OR j.next_action_at <= $2){filters}"""
    if many:
        return f"""
        SELECT j.tenant_id, count(*) FROM gold_lead_journey j
        WHERE j.tenant_id = ANY($1::uuid[]) AND {due}
        GROUP BY j.tenant_id
    """
    return f"SELECT count(*) FROM gold_lead_journey j WHERE j.tenant_id = $1 AND {due}"


async def count_due_held_for_review(conn: asyncpg.Connection, selection: DueSelection) -> int:
    """Leads the selection would take but for `requires_human_review` (skippedHumanReview)."""
    args: list[Any] = [selection.tenant_id, selection.now]
    args += [value for value in (selection.priority, selection.sequence_id) if value is not None]
    statement = _review_count_statement(selection.priority is not None, selection.sequence_id is not None)
    return int(await conn.fetchval(statement, *args))


async def count_held_of_tenants(
    conn: asyncpg.Connection, selection: DueSelection, *, tenant_ids: Sequence[UUID]
) -> dict[UUID, int]:
    """`count_due_held_for_review` of each of these tenants, in one statement (none held: no key)."""
    args: list[Any] = [list(tenant_ids), selection.now]
    args += [value for value in (selection.priority, selection.sequence_id) if value is not None]
    statement = _review_count_statement(
        selection.priority is not None, selection.sequence_id is not None, True
    )
    return {row[0]: int(row[1]) for row in await conn.fetch(statement, *args)}


_SET_JOURNEYS = """
    UPDATE gold_lead_journey AS j SET
        assigned_phone_id = COALESCE(u.phone_id, j.assigned_phone_id),
        assigned_at = CASE WHEN u.phone_id IS NOT NULL AND u.phone_id IS DISTINCT FROM j.assigned_phone_id
                           THEN $2 ELSE j.assigned_at END,
        last_dispatched_at = CASE WHEN u.channel IS NULL THEN j.last_dispatched_at ELSE $2 END,
        last_channel_used = COALESCE(u.channel, j.last_channel_used),
        next_action_at = u.next_action_at
"""
_UPDATE_JOURNEYS = (
    _SET_JOURNEYS
    + """    FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[])
         AS u(id, phone_id, channel, next_action_at)
    WHERE j.id = u.id AND j.id = ANY($3::uuid[]) AND j.tenant_id = $1
"""
)
# The same for several tenants' batches: $1 each journey's tenant, and each evidence row names its own.
# The journeys are found by primary key, one per row of `u`: `j.tenant_id = ANY(tenants)` instead let
# the planner combine two bitmap scans, four times the cost of the update itself.
_UPDATE_JOURNEYS_OF_TENANTS = (
    _SET_JOURNEYS
    + """    FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[], $1::uuid[])
         AS u(id, phone_id, channel, next_action_at, tenant_id)
    WHERE j.id = u.id AND j.tenant_id = u.tenant_id
"""
)
_UPDATE_JOURNEYS_OF_TENANTS_RECORDING = (
    f"WITH recorded AS ({record_messages_sql(tenant=None, first=7)}) {_UPDATE_JOURNEYS_OF_TENANTS}"
)


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


async def update_journeys_of_tenants(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    updates: Sequence[tuple[UUID, JourneyUpdate]],
    messages: TenantMessages,
) -> None:
    """`update_journeys` of several tenants' batches (tenant, update), with their evidence rows, in one
    statement."""
    if not updates:
        return
    journeys = [update for _, update in updates]
    await conn.execute(
        _UPDATE_JOURNEYS_OF_TENANTS_RECORDING if len(messages) else _UPDATE_JOURNEYS_OF_TENANTS,
        [tenant for tenant, _ in updates],
        now,
        *arrays(journeys, "journey_id", "phone_id", "channel", "next_action_at"),
        *(messages.columns() if len(messages) else ()),
    )


_INSERT_OUTBOX = (
    "INSERT INTO dispatch_outbox (tenant_id, dispatch_job_id, job_count, jobs) VALUES ($1, $2, $3, $4) "
    "RETURNING id"
)
_DELETE_OUTBOX = "DELETE FROM dispatch_outbox WHERE id = $1"
_INSERT_OUTBOXES = """
    INSERT INTO dispatch_outbox (tenant_id, dispatch_job_id, job_count, jobs)
    SELECT u.tenant_id, $2, u.job_count, u.jobs FROM unnest($1::uuid[], $3::int[], $4::bytea[])
         AS u(tenant_id, job_count, jobs)
    RETURNING id, tenant_id
"""
_TAKE_OUTBOXES = (
    "DELETE FROM dispatch_outbox WHERE id IN "
    "(SELECT id FROM dispatch_outbox WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED) RETURNING id"
)


@cache
def _outbox_waiting_statement(for_tenant: bool) -> str:
    # The grace is measured on the database's clock, the one that wrote created_at (now(), at the
    # dispatch's transaction start): the service's clock may differ from it (a test fixes or shifts it).
    tenant = " AND tenant_id = ANY($4::uuid[])" if for_tenant else ""
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


async def insert_outboxes(
    conn: asyncpg.Connection, *, dispatch_job_id: str, batches: Sequence[tuple[UUID, int, bytes]]
) -> dict[UUID, int]:
    """`insert_outbox` for several tenants' batches (tenant, job count, jobs) of one dispatch job, in one
    statement: tenant -> its row's id."""
    tenants, counts, jobs = (list(column) for column in zip(*batches, strict=True))
    rows = await conn.fetch(_INSERT_OUTBOXES, tenants, dispatch_job_id, counts, jobs)
    return {row["tenant_id"]: row["id"] for row in rows}


async def take_outboxes(conn: asyncpg.Connection, *, outbox_ids: Sequence[int]) -> set[int]:
    """Delete the rows, in one statement; the ids of those taken, not those a relay holds (or has
    deleted). Like a claim, the rows stay locked until the transaction ends, and a rollback puts them
    back: enqueue their jobs before committing."""
    return {row[0] for row in await conn.fetch(_TAKE_OUTBOXES, list(outbox_ids))}


async def outbox_waiting(
    conn: asyncpg.Connection,
    *,
    grace_s: float,
    after_id: int,
    limit: int,
    tenant_id: UUID | Sequence[UUID] | None = None,
) -> list[OutboxWaiting]:
    """The outbox rows after `after_id` (all tenants', or one's or some's), unlocked, in id order: whose
    they are, and whether they are older than `grace_s` by the database's clock."""
    tenants = [tenant_id] if isinstance(tenant_id, UUID) else tenant_id
    args: list[Any] = [grace_s, after_id, limit] + ([list(tenants)] if tenants is not None else [])
    statement = _outbox_waiting_statement(tenant_id is not None)
    return [decode(OutboxWaiting, row) for row in await conn.fetch(statement, *args)]


async def claim_outbox(conn: asyncpg.Connection, *, outbox_ids: Sequence[int]) -> list[OutboxRow]:
    """Lock the rows that are still there and that no one else holds (a publishing dispatch, another
    relay), until the caller's transaction ends; in id order."""
    return [decode(OutboxRow, row) for row in await conn.fetch(_CLAIM_OUTBOX, list(outbox_ids))]


async def delete_outbox(conn: asyncpg.Connection, *, outbox_id: int) -> None:
    await conn.execute(_DELETE_OUTBOX, outbox_id)
