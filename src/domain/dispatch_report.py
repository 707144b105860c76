"""The dispatch result as it goes on the wire: every field of the spec's DispatchResult (camelCase), the
per-lead decisions, and what the ALL fan-out adds.

Plain dicts, built here: a batch explains up to a thousand leads, and a pydantic model per lead cost more
than deciding the lead. src/contracts.py DispatchResult stays the contract (the ops client parses results
with it); tests/unit/test_dispatch_report.py checks that these dicts are exactly that model's output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from src.contracts import Channel
from src.domain.dispatch import Decision, Outcome, queue_of

Wire = dict[str, Any]
COUNTERS = (
    "totalEligibleLeads",
    "dispatchedToWhatsApp",
    "dispatchedToEmail",
    "skippedQuotaExceeded",
    "skippedOutsideHours",
    "skippedNoChannel",
    "skippedHumanReview",
)


def instant(moment: datetime | None) -> str | None:
    """An aware datetime as pydantic writes it in JSON mode: ISO 8601, UTC as Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def base_result(*, tenant_id: str, dry_run: bool, relayed: int, next_dispatch_at: datetime | None) -> Wire:
    """A result with nothing dispatched yet: every counter 0, every list empty."""
    result: Wire = {"tenantId": tenant_id, "dryRun": dry_run}
    result.update(dict.fromkeys(COUNTERS, 0))
    result |= {
        "jobsCreated": [],
        "processingTimeMs": 0,
        "nextDispatchAt": instant(next_dispatch_at),
        "outsideSendingWindow": False,
        "duplicateJobsSkipped": 0,
        "relayedFromOutbox": relayed,
        "decisions": [],
        "tenantJobs": [],
        "tenantPlans": [],
    }
    return result


def explain(
    decisions: Sequence[Decision], job_ids: Mapping[UUID, str], queue_slots: Mapping[UUID, str]
) -> tuple[list[Wire], list[Wire]]:
    """Each lead's decision, and the job of each dispatched lead."""
    lead_decisions: list[Wire] = []
    jobs: list[Wire] = []
    for d in decisions:
        lead_id = str(d.lead.lead_id)
        phone_id = str(d.phone_id) if d.phone_id else None
        channel = d.channel.value if d.channel else None
        job_id = job_ids[d.lead.journey_id] if d.outcome is Outcome.DISPATCHED else None
        lead_decisions.append(
            {
                "leadId": lead_id,
                "outcome": d.outcome.value,
                "channel": channel,
                "phoneId": phone_id,
                "reason": str(d.reason),
                "jobId": job_id,
            }
        )
        if job_id is not None:
            jobs.append(
                {
                    "jobId": job_id,
                    "leadId": lead_id,
                    "channel": channel,
                    "queue": queue_of(d, queue_slots),
                    "phoneId": phone_id,
                }
            )
    return lead_decisions, jobs


def batch_result(
    result: Wire,
    decisions: Sequence[Decision],
    explained: tuple[list[Wire], list[Wire]],
    *,
    written: Mapping[str, bool],
    held_for_review: int,
) -> Wire:
    """Fill `result` with the batch: counters, decisions and the jobs this dispatch created (a job whose
    id was already taken, by an earlier try, is counted as a duplicate instead)."""
    lead_decisions, jobs = explained
    outcomes = Counter((d.outcome, d.channel) for d in decisions)
    whatsapp = outcomes[(Outcome.DISPATCHED, Channel.WHATSAPP)]
    created = [job for job in jobs if written.get(job["jobId"]) is not False]
    result |= {
        "totalEligibleLeads": len(decisions),
        "dispatchedToWhatsApp": whatsapp,
        "dispatchedToEmail": sum(n for (outcome, _), n in outcomes.items() if outcome is Outcome.DISPATCHED)
        - whatsapp,
        "skippedQuotaExceeded": sum(
            n for (outcome, _), n in outcomes.items() if outcome is Outcome.SKIPPED_QUOTA
        ),
        "skippedNoChannel": sum(
            n for (outcome, _), n in outcomes.items() if outcome is Outcome.SKIPPED_NO_CHANNEL
        ),
        "skippedHumanReview": held_for_review,
        "jobsCreated": created,
        "duplicateJobsSkipped": len(jobs) - len(created),
        "decisions": lead_decisions,
    }
    return result


def fan_out_result(
    tenant_jobs: Sequence[tuple[UUID, str, bool]], *, relayed: int, next_dispatch_at: datetime
) -> Wire:
    result = base_result(tenant_id="ALL", dry_run=False, relayed=relayed, next_dispatch_at=next_dispatch_at)
    result["tenantJobs"] = [
        {"tenantId": str(tenant), "jobId": job_id, "enqueued": enqueued}
        for tenant, job_id, enqueued in tenant_jobs
    ]
    return result


def summed_plans(plans: Sequence[Wire], *, next_dispatch_at: datetime) -> Wire:
    """A dry run of ALL: each tenant's plan, and the counters summed over them."""
    result = base_result(tenant_id="ALL", dry_run=True, relayed=0, next_dispatch_at=next_dispatch_at)
    for counter in COUNTERS:
        result[counter] = sum(plan[counter] for plan in plans)
    result["tenantPlans"] = list(plans)
    return result
