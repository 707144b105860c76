"""Whether the law lets a tenant write to a lead on a channel: the one rule that the channel decision
(dispatch, select_channel) and the WhatsApp refusals (route, allocate_phone) share (docs/contract.md §3).

Romanian law (Law 506/2004, art. 12) wants the subscriber's prior consent for commercial e-mail and other
electronic messages, legal persons included, except to a tenant's existing customers for similar
products; GDPR art. 21 makes an objection to direct marketing absolute, on every channel. So a channel is
blocked for a lead that objected (OBJECTED, every channel), whose address or number is on a suppression
list (SUPPRESSED), or whose basis for that channel is not one its tenant allows (NO_LAWFUL_BASIS). A
tenant that allows no basis at all (an empty list) has turned the basis gate off; objections and
suppressions still hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple


class LawfulBasis(StrEnum):
    CONSENT = "CONSENT"
    EXISTING_CUSTOMER = "EXISTING_CUSTOMER"  # Law 506/2004 art. 12(2): similar products, with an opt-out
    LEGITIMATE_INTEREST = "LEGITIMATE_INTEREST"


# What a new tenant allows (the column default of tenants.allowed_lawful_bases): the Romanian rule.
ROMANIAN_DEFAULT_BASES = (LawfulBasis.CONSENT, LawfulBasis.EXISTING_CUSTOMER)


class Medium(StrEnum):
    """A channel as a basis and a suppression are recorded for it: e-mail cold or warm is one medium."""

    WHATSAPP = "WHATSAPP"
    EMAIL = "EMAIL"


class Block(StrEnum):
    """Why the law stops a channel, the weightiest first."""

    OBJECTED = "OBJECTED"
    SUPPRESSED = "SUPPRESSED"
    NO_LAWFUL_BASIS = "NO_LAWFUL_BASIS"


# The three below are named tuples rather than frozen dataclasses: dispatch makes a few per lead, a thousand
# leads a batch, and a tuple is about twice as cheap to build.


class Basis(NamedTuple):
    """A lead's recorded basis for one medium, and its evidence: when and where it was given."""

    basis: str | None
    at: datetime | None = None
    source: str | None = None

    def evidence(self) -> dict[str, Any]:
        """`lawfulBasis` of a message's payload (GDPR art. 5(2): the tenant can show why it went out); the
        instant as every instant of the contract, ISO 8601 in UTC with Z."""
        at = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z") if self.at is not None else None
        return {"basis": self.basis, "at": at, "source": self.source}


NO_BASIS = Basis(None)


class LeadBases(NamedTuple):
    """What a lead's journey records for the law: its basis per medium, and whether it objected."""

    whatsapp: Basis = NO_BASIS
    email: Basis = NO_BASIS
    objected: bool = False

    def of(self, medium: Medium) -> Basis:
        return self.whatsapp if medium is Medium.WHATSAPP else self.email


class LawfulStanding(NamedTuple):
    """Everything the rule reads for one lead: its bases and objection, the tenant's allowed bases (empty:
    the gate is off), and the media a suppression entry blocks for it."""

    bases: LeadBases
    allowed_bases: frozenset[str]
    suppressed: frozenset[Medium] = frozenset()


def blocked(standing: LawfulStanding, medium: Medium) -> Block | None:
    """Why the law stops `medium` for this lead, the weightiest reason first; None when it may go."""
    if standing.bases.objected:
        return Block.OBJECTED
    if medium in standing.suppressed:
        return Block.SUPPRESSED
    if standing.allowed_bases and standing.bases.of(medium).basis not in standing.allowed_bases:
        return Block.NO_LAWFUL_BASIS
    return None


# Nothing recorded and nothing allowed: no gate, no suppression, no objection (tests, and tenants whose
# counsel turned the gate off).
UNRESTRICTED = LawfulStanding(LeadBases(), frozenset())
