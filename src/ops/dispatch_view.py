"""A DispatchResult for people: the counters and one line per lead."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from src.contracts import DispatchResult
from src.ops.render import short_id, table


def counters(result: DispatchResult) -> str:
    when = f"{result.next_dispatch_at:%Y-%m-%d %H:%M %Z}" if result.next_dispatch_at else "-"
    lines = [
        f"eligible leads {result.total_eligible_leads}: "
        f"{result.dispatched_to_whatsapp} to WhatsApp, {result.dispatched_to_email} to e-mail, "
        f"{result.skipped_quota_exceeded} waiting for quota, {result.skipped_no_channel} without a channel",
        f"held for human review {result.skipped_human_review}, outside the sending window "
        f"{result.skipped_outside_hours}; next dispatch {when}; took {result.processing_time_ms} ms",
    ]
    if result.duplicate_jobs_skipped or result.relayed_from_outbox:
        lines.append(
            f"jobs already queued (same step, same day) {result.duplicate_jobs_skipped}, "
            f"relayed from the outbox {result.relayed_from_outbox}"
        )
    if result.tenant_jobs:
        lines.append(f"fanned out to {len(result.tenant_jobs)} tenants:")
        lines += [f"  {t.tenant_id} -> job {t.job_id}" for t in result.tenant_jobs]
    return "\n".join(lines)


def decisions(
    result: DispatchResult,
    *,
    lead_names: Mapping[UUID, str] | None = None,
    phone_names: Mapping[UUID, str] | None = None,
) -> str:
    """One row per lead the dispatch decided on; leads held for review are only counted."""
    leads = lead_names or {}
    phones = phone_names or {}
    plans = result.tenant_plans or [result]
    queues = {job.job_id: job.queue for plan in plans for job in plan.jobs_created}
    rows = [
        (
            leads.get(d.lead_id, short_id(d.lead_id)),
            d.outcome,
            d.channel.value if d.channel else None,
            phones.get(d.phone_id, short_id(d.phone_id)) if d.phone_id else None,
            queues.get(d.job_id or "", "(plan)" if result.dry_run and d.job_id else None),
            d.reason,
        )
        for plan in plans
        for d in plan.decisions
    ]
    if not rows:
        return "  (no lead was due)"
    return table(["LEAD", "OUTCOME", "CHANNEL", "PHONE", "QUEUE", "REASON"], rows)


def render(result: DispatchResult, **names: Mapping[UUID, str] | None) -> str:
    title = "dry run (nothing written)" if result.dry_run else "dispatch"
    return "\n".join([f"{title} for tenant {result.tenant_id}", counters(result), decisions(result, **names)])
