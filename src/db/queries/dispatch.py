"""The dispatcher's statements: tenants, their phones, the due leads, the journey update, the outbox.
They run on a SQLAlchemy connection in the dispatch's own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.db.queries.common import (
    _COMPANY_COLUMNS,
    DUE_STAGES_SQL,
    PRIORITIES,
    JourneyUpdate,
    OutboxRow,
    PhoneRow,
    TenantRow,
)
from src.domain.channels import LeadContact
from src.domain.dispatch import DueLead

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


_TENANT_PHONES = text(
    "SELECT id, tenant_id, phone_number, queue_slot, status, is_enabled, daily_limit "
    "FROM wa_phone_numbers WHERE tenant_id = :tenant_id ORDER BY queue_slot"
)


async def tenant_phones(conn: AsyncConnection, *, tenant_id: UUID) -> list[PhoneRow]:
    return [PhoneRow(*row) for row in await conn.execute(_TENANT_PHONES, {"tenant_id": tenant_id})]


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
