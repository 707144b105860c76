"""What dispatch does for the law, beside deciding: the suppression entries that name a batch's leads, read
in one statement, and the evidence row of each message it enqueues (src/db/queries/evidence.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from src.contracts import Channel
from src.db import queries
from src.domain.dispatch import Decision, DueLead, Outcome, basis_of, queue_of
from src.domain.lawful import Medium
from src.domain.suppression import lead_keys


async def suppressed_in(
    conn: asyncpg.Connection, tenant_id: UUID, leads: Sequence[DueLead]
) -> dict[UUID, frozenset[Medium]]:
    """Journey id -> the media suppression entries block for it, for the leads some entry names: the
    tenant's entries and the global ones, for every key of the batch (addresses, their domains and the
    domains above, numbers), in one statement."""
    keys = {lead.journey_id: lead_keys(lead.contact.email, lead.contact.phone) for lead in leads}
    matcher = await queries.suppression_entries(conn, tenant_id=tenant_id, keys=keys.values())
    if not matcher:  # the usual batch: no entry names any of its leads
        return {}
    found = {journey: matcher.suppressed(key) for journey, key in keys.items()}
    return {journey: media for journey, media in found.items() if media}


async def suppressed_in_tenants(
    conn: asyncpg.Connection, leads: Mapping[UUID, Sequence[DueLead]]
) -> dict[UUID, dict[UUID, frozenset[Medium]]]:
    """`suppressed_in` of each tenant's leads (tenant -> its batch), in one statement."""
    keys = {
        tenant: {lead.journey_id: lead_keys(lead.contact.email, lead.contact.phone) for lead in batch}
        for tenant, batch in leads.items()
    }
    matchers = await queries.suppression_entries_of_tenants(
        conn, keys={tenant: list(by_journey.values()) for tenant, by_journey in keys.items()}
    )
    suppressed: dict[UUID, dict[UUID, frozenset[Medium]]] = {}
    for tenant, matcher in matchers.items():
        if matcher:
            found = {journey: matcher.suppressed(key) for journey, key in keys[tenant].items()}
            suppressed[tenant] = {journey: media for journey, media in found.items() if media}
    return suppressed


def message_records(
    decisions: Sequence[Decision], job_ids: Mapping[UUID, str], *, now: datetime, slots: Mapping[UUID, str]
) -> queries.MessageBatch:
    """The evidence row of every dispatched message: its job, queue, the basis it goes out on and when it
    is scheduled (its paced slot; `now` for an e-mail)."""
    rows = []
    for d in decisions:
        if d.outcome is Outcome.DISPATCHED and d.channel is not None:
            basis = basis_of(d)
            phone = d.phone_id if d.channel is Channel.WHATSAPP else None
            job = job_ids[d.lead.journey_id]
            at = d.scheduled_at or now
            rows.append((d.lead.lead_id, d.channel.value, phone, queue_of(d, slots), job, *basis, at))
    return queries.MessageBatch(rows)
