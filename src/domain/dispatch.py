"""The dispatch decision for a batch of due leads: channel, phone, reason, job id and next action."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from src.contracts import AllocationType, Channel, ChannelPreference
from src.domain.allocation import AllocationReason, BatchAllocator
from src.domain.channels import LeadContact, decide_channel, medium_of
from src.domain.lawful import Basis, LawfulStanding, LeadBases, Medium
from src.domain.senders import Shortfall
from src.domain.windows import SendingWindow, utc_iso
from src.names import (
    EMAIL_COLD_QUEUE,
    EMAIL_WARM_QUEUE,
    SEND_EMAIL_COLD,
    SEND_EMAIL_WARM,
    SEND_WHATSAPP_INITIAL,
    outreach_job_id,
    whatsapp_queue,
)


class Outcome(StrEnum):
    DISPATCHED = "DISPATCHED"
    SKIPPED_QUOTA = "SKIPPED_QUOTA"
    SKIPPED_NO_CHANNEL = "SKIPPED_NO_CHANNEL"
    # Not scheduled today (src/domain/senders.py): no slot left in the window at the phone's pace, or the
    # tenant's 24 h portfolio budget spent. Such a lead waits as one out of quota does.
    SKIPPED_WINDOW_FULL = "SKIPPED_WINDOW_FULL"
    SKIPPED_PORTFOLIO_LIMIT = "SKIPPED_PORTFOLIO_LIMIT"


# The outcome and reason of a WhatsApp lead that the reservation could not schedule, by its shortfall.
_UNSCHEDULED = {
    Shortfall.WINDOW_FULL: Outcome.SKIPPED_WINDOW_FULL,
    Shortfall.PORTFOLIO_LIMIT: Outcome.SKIPPED_PORTFOLIO_LIMIT,
}


@dataclass(frozen=True, slots=True)
class DueLead:
    journey_id: UUID
    lead_id: UUID
    contact: LeadContact
    bases: LeadBases
    sticky_phone_id: UUID | None
    sequence_id: str | None
    sequence_step: int
    company_name: str
    contact_name: str | None
    judet: str | None
    localitate: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    lead: DueLead
    outcome: Outcome
    channel: Channel | None
    reason: str
    phone_id: UUID | None = None
    allocation: AllocationType | None = None
    recipient: str | None = None  # E.164 number or e-mail address
    scheduled_at: datetime | None = None  # a WhatsApp message's reserved slot

    @property
    def is_whatsapp(self) -> bool:
        return self.outcome is Outcome.DISPATCHED and self.channel is Channel.WHATSAPP

    @property
    def is_new_contact(self) -> bool:
        return self.lead.contact.stage == "COLD"


@dataclass(frozen=True, slots=True)
class Reserved:
    """What the reservation gave a WhatsApp lead: its phone and slot, or why it got none."""

    phone_id: UUID | None
    scheduled_at: datetime | None = None
    shortfall: Shortfall | None = None


def plan_batch(
    leads: Iterable[DueLead],
    *,
    preference: ChannelPreference,
    allocator: BatchAllocator,
    allowed_bases: frozenset[str],
    suppressed: Mapping[UUID, frozenset[Medium]],
    reserved: Mapping[UUID, UUID] | None = None,
) -> list[Decision]:
    """Decide every lead of a batch. `allowed_bases`: the tenant's; `suppressed`: journey id -> the media
    suppression entries block for the lead; `reserved` maps journey id -> phone for the WhatsApp jobs an
    earlier try of this dispatch already reserved quota for (it died before committing)."""
    reserved = reserved or {}
    decisions = []
    nothing: frozenset[Medium] = frozenset()
    for lead in leads:
        lawful = LawfulStanding(lead.bases, allowed_bases, suppressed.get(lead.journey_id, nothing))
        choice = decide_channel(
            lead.contact, preference, whatsapp_capacity=allocator.has_available_phone, lawful=lawful
        )
        if choice.selected is None:
            decisions.append(Decision(lead, Outcome.SKIPPED_NO_CHANNEL, None, choice.reason))
        elif choice.selected is Channel.WHATSAPP:
            allocation = allocator.take(lead.sticky_phone_id, reserved.get(lead.journey_id))
            if allocation.phone_id is None or allocation.reason is AllocationReason.STICKY_QUOTA_EXHAUSTED:
                decisions.append(
                    Decision(
                        lead, Outcome.SKIPPED_QUOTA, Channel.WHATSAPP, allocation.reason, allocation.phone_id
                    )
                )
            else:
                decisions.append(
                    Decision(
                        lead,
                        Outcome.DISPATCHED,
                        Channel.WHATSAPP,
                        allocation.reason,
                        allocation.phone_id,
                        allocation.kind,
                        choice.verified_phone,
                    )
                )
        else:
            decisions.append(
                Decision(
                    lead, Outcome.DISPATCHED, choice.selected, choice.reason, recipient=choice.verified_email
                )
            )
    return decisions


def settle_reservations(decisions: Sequence[Decision], reserved: Mapping[UUID, Reserved]) -> list[Decision]:
    """Apply what Redis actually reserved (journey id -> phone and slot, or why there was none)."""
    settled = []
    for decision in decisions:
        if not decision.is_whatsapp:
            settled.append(decision)
            continue
        got = reserved[decision.lead.journey_id]
        if got.phone_id is None:
            settled.append(_unreserved(decision, got.shortfall))
        elif got.phone_id != decision.phone_id:
            kind, reason = _allocation_of(decision.lead, got.phone_id)
            settled.append(
                replace(
                    decision,
                    phone_id=got.phone_id,
                    allocation=kind,
                    reason=reason,
                    scheduled_at=got.scheduled_at,
                )
            )
        else:  # the usual case, built directly: dataclasses.replace costs three times as much
            d = decision
            at = got.scheduled_at
            settled.append(
                Decision(d.lead, d.outcome, d.channel, d.reason, d.phone_id, d.allocation, d.recipient, at)
            )
    return settled


def _unreserved(decision: Decision, shortfall: Shortfall | None) -> Decision:
    """A WhatsApp lead the reservation gave nothing: it waits, with the reason it got none."""
    if shortfall in _UNSCHEDULED:
        assert shortfall is not None
        return replace(decision, outcome=_UNSCHEDULED[shortfall], reason=shortfall.value)
    sticky_kept = decision.allocation is AllocationType.STICKY
    reason = AllocationReason.STICKY_QUOTA_EXHAUSTED if sticky_kept else AllocationReason.NO_PHONE_WITH_QUOTA
    return replace(decision, outcome=Outcome.SKIPPED_QUOTA, reason=reason)


def _allocation_of(lead: DueLead, phone: UUID) -> tuple[AllocationType, AllocationReason]:
    """How a lead came to a phone other than the one its plan chose (a concurrent dispatch took the room)."""
    if lead.sticky_phone_id is None:
        return AllocationType.NEW, AllocationReason.NEW_PHONE
    if phone == lead.sticky_phone_id:
        return AllocationType.STICKY, AllocationReason.STICKY
    return AllocationType.FALLBACK, AllocationReason.FALLBACK_STICKY_UNAVAILABLE


def job_id_for(decision: Decision, tenant_id: UUID, day: date) -> str:
    return lead_job_id(decision.lead, decision.channel is Channel.WHATSAPP, tenant_id, day)


def lead_job_id(lead: DueLead, whatsapp: bool, tenant_id: UUID, day: date) -> str:
    kind = "wa" if whatsapp else "email"
    return outreach_job_id(kind, tenant_id, lead.lead_id, lead.sequence_id, lead.sequence_step, day)


def next_actions(
    *, now: datetime, window: SendingWindow, redispatch_after: timedelta, no_channel_recheck: timedelta
) -> dict[Outcome, datetime]:
    """Move every decided lead out of the due set, so the next tick reaches the leads behind it: the next
    action of a lead by its outcome (one computation per batch, not per lead).

    A dispatched lead waits `redispatch_after` (the sender sets its own next action when it sends), and
    never less than until the tenant's next local day begins. Its job id holds the tenant-local date, so
    a lead dispatched again on the same date would get the same id: a second message that arq accepts
    once the sender has consumed the first and kept no result, and that the quota counts once (one
    reservation per job id). From the next local day on, the id and the quota day are new. This holds
    for any `redispatch_after`, and on a 25-hour day (the end of DST) too, where now + 24 h can still be
    the same date. A lead skipped for quota waits for the next window on a later day, when its phone has
    a fresh quota; a lead with no usable channel is looked at again after `no_channel_recheck`.
    """
    next_quota_day = window.next_quota_day_opening(now) or now + redispatch_after
    return {
        Outcome.DISPATCHED: max(now + redispatch_after, window.next_day_start(now)),
        Outcome.SKIPPED_QUOTA: next_quota_day,
        Outcome.SKIPPED_WINDOW_FULL: next_quota_day,
        Outcome.SKIPPED_PORTFOLIO_LIMIT: next_quota_day,
        Outcome.SKIPPED_NO_CHANNEL: now + no_channel_recheck,
    }


def basis_of(decision: Decision) -> Basis:
    """The basis a dispatched message goes out on: the lead's for the medium of its channel."""
    assert decision.channel is not None
    return decision.lead.bases.of(medium_of(decision.channel))


def queue_of(decision: Decision, queue_slots: Mapping[UUID, str]) -> str:
    if decision.channel is Channel.WHATSAPP:
        assert decision.phone_id is not None
        return whatsapp_queue(queue_slots[decision.phone_id])
    return EMAIL_COLD_QUEUE if decision.channel is Channel.EMAIL_COLD else EMAIL_WARM_QUEUE


def output_for(
    decision: Decision,
    *,
    tenant_id: UUID,
    correlation_id: str,
    dispatch_job_id: str,
    queue_slots: Mapping[UUID, str],
) -> tuple[str, str, dict[str, Any]]:
    """Queue, function and payload (the spec's fields, camelCase) of a dispatched lead's job."""
    lead = decision.lead
    common: dict[str, Any] = {
        "correlationId": correlation_id,
        "tenantId": str(tenant_id),
        "leadId": str(lead.lead_id),
        "isNewContact": lead.contact.stage == "COLD",
        "sequenceId": lead.sequence_id,
        "sequenceStep": lead.sequence_step,
        "dispatchJobId": dispatch_job_id,
        "lawfulBasis": basis_of(decision).evidence(),
    }
    if decision.channel is Channel.WHATSAPP:
        assert decision.phone_id is not None
        payload = {
            **common,
            "phoneId": str(decision.phone_id),
            "recipientPhone": decision.recipient,
            "scheduledAt": utc_iso(decision.scheduled_at) if decision.scheduled_at else None,
            "personalization": {
                "companyName": lead.company_name,
                "contactName": lead.contact_name,
                "judet": lead.judet,
                "localitate": lead.localitate,
            },
        }
        return queue_of(decision, queue_slots), SEND_WHATSAPP_INITIAL, payload
    payload = {
        **common,
        "recipientEmail": decision.recipient,
        "personalization": {"companyName": lead.company_name, "contactName": lead.contact_name},
    }
    function = SEND_EMAIL_COLD if decision.channel is Channel.EMAIL_COLD else SEND_EMAIL_WARM
    return queue_of(decision, queue_slots), function, payload
