"""Whether a per-lead job may put a WhatsApp message in motion for a lead, and when it may go out.

route and allocate_phone share the refusals; route alone times the send (docs/contract.md §3). Dispatch
applies the same facts in its own way: it never selects a lead held for review or outside the due
stages, and skips a suspended tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from src.domain.lawful import Block, LawfulStanding, Medium, blocked
from src.domain.windows import SendingWindow, opening_on

# The stages in which a lead gets no message: a closed conversation, or one a person stopped.
TERMINAL_STAGES = frozenset({"CONVERTED", "DEAD", "PAUSED"})


class Refusal(StrEnum):
    TENANT_SUSPENDED = "TENANT_SUSPENDED"
    TERMINAL_STAGE = "TERMINAL_STAGE"
    HELD_FOR_REVIEW = "HELD_FOR_REVIEW"
    WHATSAPP_OPTED_OUT = "WHATSAPP_OPTED_OUT"
    OBJECTED = Block.OBJECTED.value
    SUPPRESSED = Block.SUPPRESSED.value
    NO_LAWFUL_BASIS = Block.NO_LAWFUL_BASIS.value


@dataclass(frozen=True, slots=True)
class LeadStanding:
    """What the refusals depend on: the tenant's status, the lead's journey, and what the law says of
    it (src/domain/lawful.py)."""

    tenant_status: str
    stage: str
    requires_human_review: bool
    whatsapp_opted_out: bool
    lawful: LawfulStanding


def whatsapp_refusal(standing: LeadStanding) -> Refusal | None:
    """Why no WhatsApp message may go to this lead, the weightiest reason first (the tenant, an
    objection, the stage, the review hold, the opt-out, a suppression, the basis); None when it may."""
    if standing.tenant_status != "ACTIVE":
        return Refusal.TENANT_SUSPENDED
    block = blocked(standing.lawful, Medium.WHATSAPP)
    if block is Block.OBJECTED:
        return Refusal.OBJECTED
    if standing.stage in TERMINAL_STAGES:
        return Refusal.TERMINAL_STAGE
    if standing.requires_human_review:
        return Refusal.HELD_FOR_REVIEW
    if standing.whatsapp_opted_out:
        return Refusal.WHATSAPP_OPTED_OUT
    return Refusal(block.value) if block is not None else None


@dataclass(frozen=True, slots=True)
class SendTime:
    """When a routed message is due, and the tenant-local date whose quota it counts against."""

    at: datetime
    deferred: bool
    quota_day: date


def send_time(window: SendingWindow, now: datetime, *, send_now: bool) -> SendTime | None:
    """Now while the window is open (or for a reply, `send_now`); else the window's next opening, with
    that opening's quota day. None when the window never opens."""
    if send_now or is_open(window, now):
        return SendTime(now, deferred=False, quota_day=window.local_date(now))
    opening = window.next_opening(now)
    if opening is None:
        return None
    return SendTime(opening, deferred=True, quota_day=window.local_date(opening))


_ONE_DAY = timedelta(days=1)


def is_open(window: SendingWindow, at: datetime) -> bool:
    """`window.is_open(at)`, on memoised openings: every route job asks (tests/unit/test_lead_gate.py
    proves the two agree)."""
    today = window.local_date(at)
    for day in (today - _ONE_DAY, today):
        opening = opening_on(window, day)
        if opening is not None and opening[0] <= at < opening[1]:
            return True
    return False


_REFUSAL_WHY = {
    Refusal.TENANT_SUSPENDED: "the tenant is {standing.tenant_status}, it sends nothing",
    Refusal.TERMINAL_STAGE: "the lead is {standing.stage}",
    Refusal.HELD_FOR_REVIEW: "the lead is held for human review",
    Refusal.WHATSAPP_OPTED_OUT: "the lead opted out of WhatsApp",
    Refusal.OBJECTED: "the lead objected to direct marketing (GDPR art. 21), on every channel",
    Refusal.SUPPRESSED: "a suppression entry names the lead's number or address for WhatsApp",
    Refusal.NO_LAWFUL_BASIS: "the lead's WhatsApp basis is {basis}, the tenant allows {allowed}",
}


def refusal_reason(refusal: Refusal, standing: LeadStanding) -> str:
    """`CODE: why`, as route's and allocate_phone's results give it for a lead that may get no WhatsApp
    message."""
    why = _REFUSAL_WHY[refusal].format(
        standing=standing,
        basis=standing.lawful.bases.whatsapp.basis,
        allowed=", ".join(sorted(standing.lawful.allowed_bases)),
    )
    return f"{refusal}: {why}"
