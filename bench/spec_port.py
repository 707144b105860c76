"""The spec's reference dispatch (seed file, section 2.4) ported to Python as written: the baseline of
bench/dispatch_throughput.py. It is NOT the service: it keeps the spec's defects on purpose (no quota,
no sending window, no locking, `Date.now()` job ids, the `XX` queue), because what is measured is the
cost of its shape: one enqueue and, for a new sticky phone, one UPDATE per lead.

Mapping from the TypeScript:
- drizzle's `db.select(...)` / `db.update(...)`: one pooled connection per statement, autocommit
  (`engine.connect()` / `engine.begin()`), all columns of both tables selected;
- `flowProducer.add(...)`: one `ArqRedis.enqueue_job` per lead, with the spec's job id, queue, function
  name and payload (arq has no job priority, so `priority` is dropped);
- `job.updateProgress(...)`: dropped (arq has no progress), which only makes the port faster.

One change, for the benchmark only: the spec never moves a lead out of the due set, so every run of it
selects the same first batch. The port takes an `offset` and the harness pages through the due set with
it, so that both algorithms process each due lead exactly once. `ORDER BY next_action_at` gets `id` as a
tie-break so that the pages are disjoint (without it PostgreSQL may return tied rows in any order); the
query still sorts every due row of the tenant, as the spec's does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_ELIGIBLE = text(
    """
    SELECT j.*, c.denumire, c.telefon_principal, c.hlr_reachable, c.email_principal, c.email_status,
           c.contact_principal_nume, c.judet, c.localitate
    FROM gold_lead_journey j
    JOIN gold_companies c ON j.lead_id = c.id
    WHERE j.tenant_id = :tenant_id
      AND (j.engagement_stage = 'COLD' OR j.engagement_stage = 'CONTACTED_WA'
           OR j.engagement_stage = 'CONTACTED_EMAIL')
      AND (j.next_action_at IS NULL OR j.next_action_at < :now)
      AND j.requires_human_review = false
      AND j.engagement_stage <> 'PAUSED'
    ORDER BY j.next_action_at, j.id
    LIMIT :limit OFFSET :offset
    """
)
_AVAILABLE_PHONES = text(
    """
    SELECT * FROM wa_phone_numbers
    WHERE tenant_id = :tenant_id AND status = 'ACTIVE' AND is_enabled = true
    ORDER BY total_messages_sent
    """
)
_SET_STICKY = text(
    "UPDATE gold_lead_journey SET assigned_phone_id = :phone_id, assigned_at = :now WHERE id = :id"
)


@dataclass
class SpecResult:
    total_eligible_leads: int = 0
    dispatched_to_whatsapp: int = 0
    dispatched_to_email: int = 0
    skipped_quota_exceeded: int = 0
    skipped_no_channel: int = 0
    skipped_human_review: int = 0
    processing_time_ms: int = 0


def _date_now_ms() -> int:
    return int(time.time() * 1000)


async def spec_dispatch(
    engine: AsyncEngine,
    arq: ArqRedis,
    *,
    tenant_id: UUID,
    correlation_id: str,
    batch_size: int,
    now: datetime,
    offset: int = 0,
    channel_preference: str = "AUTO",
) -> SpecResult:
    start = time.perf_counter()
    result = SpecResult()
    params: dict[str, Any] = {"tenant_id": tenant_id, "now": now, "limit": batch_size, "offset": offset}
    async with engine.connect() as conn:
        eligible = (await conn.execute(_ELIGIBLE, params)).mappings().all()
    result.total_eligible_leads = len(eligible)
    if not eligible:
        return result

    async with engine.connect() as conn:
        phones = (await conn.execute(_AVAILABLE_PHONES, {"tenant_id": tenant_id})).mappings().all()
    phone_index = 0

    for lead in eligible:
        is_new_contact = lead["engagement_stage"] == "COLD"
        has_phone = bool(lead["telefon_principal"] and lead["hlr_reachable"])
        has_email = bool(lead["email_principal"] and lead["email_status"] == "valid")
        if lead["requires_human_review"]:
            result.skipped_human_review += 1
            continue

        selected: str | None = None
        if channel_preference == "AUTO":
            if has_phone and phones and not lead["whatsapp_opted_out"]:
                selected = "WHATSAPP"
            elif has_email and not lead["email_opted_out"]:
                selected = "EMAIL_COLD" if is_new_contact else "EMAIL_WARM"
        elif channel_preference == "WHATSAPP" and has_phone:
            selected = "WHATSAPP"
        elif channel_preference == "EMAIL" and has_email:
            selected = "EMAIL_COLD" if is_new_contact else "EMAIL_WARM"
        if selected is None:
            result.skipped_no_channel += 1
            continue

        if selected == "WHATSAPP":
            phone_id = lead["assigned_phone_id"] or (
                phones[phone_index % len(phones)]["id"] if phones else None
            )
            if not phone_id:
                result.skipped_quota_exceeded += 1
                continue
            number = next((p["phone_number"] for p in phones if p["id"] == phone_id), "XX")
            queue = f"q:wa:phone_{number[-2:].rjust(2, '0')}"
            await arq.enqueue_job(
                "send-whatsapp-initial",
                {
                    "correlationId": correlation_id,
                    "tenantId": str(tenant_id),
                    "leadId": str(lead["lead_id"]),
                    "phoneId": str(phone_id),
                    "recipientPhone": lead["telefon_principal"],
                    "isNewContact": is_new_contact,
                    "sequenceId": lead["current_sequence_id"],
                    "sequenceStep": lead["sequence_step"],
                    "personalization": {
                        "companyName": lead["denumire"],
                        "contactName": lead["contact_principal_nume"],
                        "judet": lead["judet"],
                        "localitate": lead["localitate"],
                    },
                },
                _job_id=f"wa-{lead['lead_id']}-{_date_now_ms()}",
                _queue_name=queue,
            )
            result.dispatched_to_whatsapp += 1
            if not lead["assigned_phone_id"]:
                async with engine.begin() as conn:
                    await conn.execute(_SET_STICKY, {"phone_id": phone_id, "now": now, "id": lead["id"]})
            phone_index += 1
        else:
            cold = selected == "EMAIL_COLD"
            await arq.enqueue_job(
                "send-email-cold" if cold else "send-email-warm",
                {
                    "correlationId": correlation_id,
                    "tenantId": str(tenant_id),
                    "leadId": str(lead["lead_id"]),
                    "recipientEmail": lead["email_principal"],
                    "isNewContact": is_new_contact,
                    "sequenceId": lead["current_sequence_id"],
                    "sequenceStep": lead["sequence_step"],
                    "personalization": {
                        "companyName": lead["denumire"],
                        "contactName": lead["contact_principal_nume"],
                    },
                },
                _job_id=f"email-{lead['lead_id']}-{_date_now_ms()}",
                _queue_name="q:email:cold" if cold else "q:email:warm",
            )
            result.dispatched_to_email += 1

    result.processing_time_ms = round((time.perf_counter() - start) * 1000)
    return result
