"""Every job's result as it goes on the wire (camelCase JSON), built here and nowhere else.

The pydantic result models of src/contracts.py are the contract, and what the client parses results with.
The jobs return plain dicts built by these functions instead of dumping a model: a dispatch explains up
to a thousand leads, and a model per lead cost more than deciding the lead. tests/integration/
test_result_contract.py runs every job through each of its outcomes and checks the result against its
model, field for field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from src.contracts import Channel
from src.domain.allocation import Allocation, AllocationReason, PhoneState
from src.domain.channels import ChannelDecision, LeadContact
from src.domain.dispatch import Decision, Outcome, queue_of
from src.domain.lawful import LawfulStanding
from src.domain.lead_gate import LeadStanding, Refusal, refusal_reason
from src.domain.windows import utc_iso
from src.errors import JobError

Wire = dict[str, Any]


def instant(moment: datetime | None) -> str | None:
    """`utc_iso`, or None."""
    return utc_iso(moment) if moment is not None else None


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


# ---------------------------------------------------------------- select_channel


def channel_selection(
    *,
    lead_id: UUID,
    contact: LeadContact,
    decision: ChannelDecision,
    whatsapp_capacity: bool,
    lawful: LawfulStanding,
    refusal: Refusal | None = None,
) -> Wire:
    """ChannelSelectionResult. `refusal`: no channel at all (a suspended tenant), whatever the decision;
    its reasoning still explains the lead."""
    result = _channel_result(lead_id, contact, decision, whatsapp_capacity, lawful)
    if refusal is not None:
        return result | {
            "selectedChannel": None,
            "fallbackChannel": None,
            "reasonCode": refusal.value,
        }
    return result


def _channel_result(
    lead_id: UUID, contact: LeadContact, decision: ChannelDecision, capacity: bool, lawful: LawfulStanding
) -> Wire:
    return {
        "leadId": str(lead_id),
        "selectedChannel": decision.selected.value if decision.selected else None,
        "reasoning": {
            "hasVerifiedPhone": decision.verified_phone is not None,
            "hasVerifiedEmail": decision.has_verified_email,
            "phoneOptedOut": contact.whatsapp_opted_out,
            "emailOptedOut": contact.email_opted_out,
            "currentStage": contact.stage,
            "preferenceScore": {channel.value: score for channel, score in decision.scores.items()},
            "previousEngagement": contact.last_channel_used,
            "whatsappCapacity": capacity,
            "normalizedPhone": decision.verified_phone,
            "whatsappLawfulBasis": lawful.bases.whatsapp.basis,
            "emailLawfulBasis": lawful.bases.email.basis,
            "suppressed": sorted(lawful.suppressed),
            "objected": lawful.bases.objected,
        },
        "fallbackChannel": decision.fallback.value if decision.fallback else None,
        "reasonCode": decision.reason.value,
    }


# ---------------------------------------------------------------- allocate_phone


def phone_allocation(
    *,
    lead_id: UUID,
    allocation: Allocation,
    phone: PhoneState | None,
    quota_date: date,
    previous_phone_id: UUID | None,
    queue: str | None,
) -> Wire:
    """PhoneAllocationResult. `phone`: the allocated phone as the decision saw it (its quota today)."""
    return {
        "leadId": str(lead_id),
        "allocatedPhoneId": _id(allocation.phone_id),
        "allocationType": allocation.kind.value if allocation.kind else None,
        "phoneQuotaStatus": None
        if phone is None
        else {
            "currentUsage": phone.used_today,
            "remaining": phone.remaining,
            "dailyLimit": phone.daily_limit,
            "quotaDate": quota_date.isoformat(),
        },
        "reason": _allocation_reason(allocation, phone),
        "previousPhoneId": _id(previous_phone_id) if previous_phone_id != allocation.phone_id else None,
        "queue": queue,
    }


def phone_refused(*, lead_id: UUID, refusal: Refusal, standing: LeadStanding) -> Wire:
    """PhoneAllocationResult of a lead that gets no phone: nothing is allocated or changed."""
    return {
        "leadId": str(lead_id),
        "allocatedPhoneId": None,
        "allocationType": None,
        "phoneQuotaStatus": None,
        "reason": refusal_reason(refusal, standing),
        "previousPhoneId": None,
        "queue": None,
    }


_ALLOCATION_WHY = {
    AllocationReason.STICKY: "existing sticky assignment ({room})",
    AllocationReason.STICKY_QUOTA_EXHAUSTED: "sticky phone kept, no quota left today",
    AllocationReason.NEW_PHONE: "drawn by remaining quota ({room})",
    AllocationReason.FALLBACK_STICKY_UNAVAILABLE: "sticky phone unavailable ({room})",
    AllocationReason.NO_PHONE_WITH_QUOTA: "no available phone has quota left today",
}


def _allocation_reason(allocation: Allocation, phone: PhoneState | None) -> str:
    room = f"{phone.remaining} of {phone.daily_limit} left today" if phone else ""
    return f"{allocation.reason}: {_ALLOCATION_WHY[allocation.reason].format(room=room)}"


# ---------------------------------------------------------------- route


def routed(
    *,
    queue: str,
    job_id: str,
    phone_id: UUID,
    rerouted_from: UUID | None,
    enqueued: bool,
    reason: str,
    scheduled_at: datetime | None,
) -> Wire:
    """RouterResult of a message that is on its phone's queue (`enqueued`: written by this try), due at
    once, or at `scheduled_at` when the sending window was closed."""
    return {
        "routed": True,
        "targetQueue": queue,
        "jobId": job_id,
        "phoneId": str(phone_id),
        "reroutedFrom": _id(rerouted_from),
        "enqueued": enqueued,
        "reason": reason,
        "deferred": scheduled_at is not None,
        "scheduledAt": instant(scheduled_at),
    }


def not_routed(reason: str, *, phone_id: UUID | None = None, rerouted_from: UUID | None = None) -> Wire:
    """RouterResult of a message that was not sent, and why."""
    return {
        "routed": False,
        "targetQueue": None,
        "jobId": None,
        "phoneId": _id(phone_id),
        "reroutedFrom": _id(rerouted_from),
        "enqueued": False,
        "reason": reason,
        "deferred": False,
        "scheduledAt": None,
    }


# ---------------------------------------------------------------- dispatch

DISPATCH_COUNTERS = (
    "totalEligibleLeads",
    "dispatchedToWhatsApp",
    "dispatchedToEmail",
    "skippedQuotaExceeded",
    "skippedOutsideHours",
    "skippedNoChannel",
    "skippedHumanReview",
    "skippedWindowFull",
    "skippedPortfolioLimit",
)


def dispatch_base(*, tenant_id: str, dry_run: bool, relayed: int, next_dispatch_at: datetime | None) -> Wire:
    """A DispatchResult with nothing dispatched yet: every counter 0, every list empty."""
    result: Wire = {"tenantId": tenant_id, "dryRun": dry_run}
    result.update(dict.fromkeys(DISPATCH_COUNTERS, 0))
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
        "tenantResults": [],
        "tenantErrors": [],
    }
    return result


def dispatch_outside_window(result: Wire, *, waiting: int) -> Wire:
    """`result` of a tenant whose sending window is closed: its `waiting` due leads were left alone."""
    return result | {"skippedOutsideHours": waiting, "outsideSendingWindow": True}


@dataclass(frozen=True, slots=True)
class Explained:
    """Each lead's decision, and the job of each dispatched lead, as the result lists them."""

    decisions: list[Wire]
    jobs: list[Wire]


def explain(
    decisions: Sequence[Decision], job_ids: Mapping[UUID, str], queue_slots: Mapping[UUID, str]
) -> Explained:
    """`job_ids`: journey id -> job id of its message."""
    lead_decisions: list[Wire] = []
    jobs: list[Wire] = []
    for d in decisions:
        lead_id = str(d.lead.lead_id)
        phone_id = _id(d.phone_id)
        channel = d.channel.value if d.channel else None
        job_id = job_ids[d.lead.journey_id] if d.outcome is Outcome.DISPATCHED else None
        scheduled_at = instant(d.scheduled_at)
        lead_decisions.append(
            {
                "leadId": lead_id,
                "outcome": d.outcome.value,
                "channel": channel,
                "phoneId": phone_id,
                "reason": str(d.reason),
                "jobId": job_id,
                "scheduledAt": scheduled_at,
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
                    "scheduledAt": scheduled_at,
                }
            )
    return Explained(lead_decisions, jobs)


def dispatch_batch(
    result: Wire,
    decisions: Sequence[Decision],
    explained: Explained,
    *,
    written: Mapping[str, bool],
    held_for_review: int,
) -> Wire:
    """`result` filled with a decided batch: counters, decisions and the jobs this dispatch created. A job
    whose id was already taken (written False: an earlier try enqueued it) counts as a duplicate."""
    outcomes = Counter((d.outcome, d.channel) for d in decisions)
    by_outcome = Counter(d.outcome for d in decisions)
    whatsapp = outcomes[(Outcome.DISPATCHED, Channel.WHATSAPP)]
    created = [job for job in explained.jobs if written.get(job["jobId"]) is not False]
    return result | {
        "totalEligibleLeads": len(decisions),
        "dispatchedToWhatsApp": whatsapp,
        "dispatchedToEmail": by_outcome[Outcome.DISPATCHED] - whatsapp,
        "skippedQuotaExceeded": by_outcome[Outcome.SKIPPED_QUOTA],
        "skippedNoChannel": by_outcome[Outcome.SKIPPED_NO_CHANNEL],
        "skippedHumanReview": held_for_review,
        "skippedWindowFull": by_outcome[Outcome.SKIPPED_WINDOW_FULL],
        "skippedPortfolioLimit": by_outcome[Outcome.SKIPPED_PORTFOLIO_LIMIT],
        "jobsCreated": created,
        "duplicateJobsSkipped": len(explained.jobs) - len(created),
        "decisions": explained.decisions,
    }


def tenant_error(tenant_id: UUID, error: JobError) -> Wire:
    """TenantError: a tenant an ALL dispatch left out, with the failure its own dispatch meets."""
    return {"tenantId": str(tenant_id), "error": error.code, "message": str(error)}


def dispatch_fan_out(
    tenant_jobs: Sequence[tuple[UUID, str, bool]],
    errors: Sequence[Wire],
    *,
    relayed: int,
    next_dispatch_at: datetime,
) -> Wire:
    """The result of an ALL dispatch: one dispatch job per tenant (tenant, job id, enqueued by this call),
    and the tenants left out (`tenant_error`)."""
    result = dispatch_base(tenant_id="ALL", dry_run=False, relayed=relayed, next_dispatch_at=next_dispatch_at)
    result["tenantJobs"] = [
        {"tenantId": str(tenant), "jobId": job_id, "enqueued": enqueued}
        for tenant, job_id, enqueued in tenant_jobs
    ]
    result["tenantErrors"] = list(errors)
    return result


def dispatch_group(
    tenant_results: Sequence[Wire],
    errors: Sequence[Wire],
    *,
    dry_run: bool,
    relayed: int,
    next_dispatch_at: datetime,
) -> Wire:
    """The result of a dispatch of several tenants together (tenantIds): each tenant's result as its own
    dispatch would return it, the counters summed over them, and the tenants it could not dispatch."""
    result = dispatch_base(
        tenant_id="ALL", dry_run=dry_run, relayed=relayed, next_dispatch_at=next_dispatch_at
    )
    for counter in (*DISPATCH_COUNTERS, "duplicateJobsSkipped"):
        result[counter] = sum(tenant[counter] for tenant in tenant_results)
    result["tenantResults"] = list(tenant_results)
    result["tenantErrors"] = list(errors)
    return result


def dispatch_plans(plans: Sequence[Wire], errors: Sequence[Wire], *, next_dispatch_at: datetime) -> Wire:
    """A dry run of ALL: each tenant's plan, the counters summed over them, and the tenants left out."""
    result = dispatch_base(tenant_id="ALL", dry_run=True, relayed=0, next_dispatch_at=next_dispatch_at)
    for counter in DISPATCH_COUNTERS:
        result[counter] = sum(plan[counter] for plan in plans)
    result["tenantPlans"] = list(plans)
    result["tenantErrors"] = list(errors)
    return result
