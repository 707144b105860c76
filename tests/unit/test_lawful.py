"""The law's rule (src/domain/lawful.py) and how the channel decision and the WhatsApp refusals apply it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.contracts import Channel, ChannelPreference
from src.domain.channels import ChannelReason, LeadContact, decide_channel
from src.domain.lawful import (
    NO_BASIS,
    UNRESTRICTED,
    Basis,
    Block,
    LawfulStanding,
    LeadBases,
    Medium,
    blocked,
)
from src.domain.lead_gate import LeadStanding, Refusal, whatsapp_refusal

ROMANIAN = frozenset({"CONSENT", "EXISTING_CUSTOMER"})
CONSENT = Basis("CONSENT")
BOTH = LeadBases(whatsapp=CONSENT, email=CONSENT)
LEAD = LeadContact("COLD", "0721000001", True, "office@agro.ro", "valid", False, False, None)
AUTO, WA, EMAIL = ChannelPreference.AUTO, ChannelPreference.WHATSAPP, ChannelPreference.EMAIL


def standing(
    bases: LeadBases = BOTH, allowed: frozenset[str] = ROMANIAN, suppressed: frozenset[Medium] = frozenset()
) -> LawfulStanding:
    return LawfulStanding(bases, allowed, suppressed)


@pytest.mark.parametrize(
    ("lawful", "whatsapp", "email"),
    [
        (standing(), None, None),
        (standing(LeadBases()), Block.NO_LAWFUL_BASIS, Block.NO_LAWFUL_BASIS),
        (standing(LeadBases(whatsapp=CONSENT)), None, Block.NO_LAWFUL_BASIS),
        (standing(LeadBases(email=Basis("EXISTING_CUSTOMER"))), Block.NO_LAWFUL_BASIS, None),
        # Legitimate interest is no basis under the Romanian default; a tenant may allow it.
        (standing(LeadBases(Basis("LEGITIMATE_INTEREST"), CONSENT)), Block.NO_LAWFUL_BASIS, None),
        (
            standing(LeadBases(Basis("LEGITIMATE_INTEREST")), frozenset({"LEGITIMATE_INTEREST"})),
            None,
            Block.NO_LAWFUL_BASIS,
        ),
        # An empty list turns the gate off, and only the gate.
        (standing(LeadBases(), frozenset()), None, None),
        (standing(LeadBases(), frozenset(), frozenset({Medium.EMAIL})), None, Block.SUPPRESSED),
        (standing(LeadBases(objected=True), frozenset()), Block.OBJECTED, Block.OBJECTED),
        (standing(suppressed=frozenset({Medium.WHATSAPP})), Block.SUPPRESSED, None),
        (standing(suppressed=frozenset(Medium)), Block.SUPPRESSED, Block.SUPPRESSED),
        # The weightiest first: the objection, then a suppression, then the basis.
        (standing(LeadBases(objected=True), suppressed=frozenset(Medium)), Block.OBJECTED, Block.OBJECTED),
        (
            standing(LeadBases(), suppressed=frozenset({Medium.EMAIL})),
            Block.NO_LAWFUL_BASIS,
            Block.SUPPRESSED,
        ),
    ],
)
def test_blocked(lawful: LawfulStanding, whatsapp: Block | None, email: Block | None) -> None:
    assert (blocked(lawful, Medium.WHATSAPP), blocked(lawful, Medium.EMAIL)) == (whatsapp, email)


@pytest.mark.parametrize(
    ("lead", "lawful", "preference", "selected", "fallback", "reason"),
    [
        (LEAD, standing(), AUTO, Channel.WHATSAPP, Channel.EMAIL_COLD, ChannelReason.BEST_SCORE),
        # An objection blocks every channel, whatever the preference.
        (LEAD, standing(LeadBases(BOTH.whatsapp, BOTH.email, objected=True)), AUTO, None, None, ChannelReason.OBJECTED),
        (LEAD, standing(LeadBases(BOTH.whatsapp, BOTH.email, objected=True)), EMAIL, None, None, ChannelReason.OBJECTED),
        # ... even of a lead without any verified contact.
        (replace(LEAD, phone=None, email=None), standing(LeadBases(objected=True)), AUTO, None, None, ChannelReason.OBJECTED),
        # One channel blocked: the other is chosen; a preference for the blocked one gets nothing.
        (LEAD, standing(suppressed=frozenset({Medium.WHATSAPP})), AUTO, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        (LEAD, standing(suppressed=frozenset({Medium.WHATSAPP})), WA, None, Channel.EMAIL_COLD, ChannelReason.PREFERENCE_NOT_ALLOWED),
        (LEAD, standing(LeadBases(whatsapp=CONSENT)), EMAIL, None, Channel.WHATSAPP, ChannelReason.PREFERENCE_NOT_ALLOWED),
        (LEAD, standing(LeadBases(email=CONSENT)), AUTO, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        # Nothing allowed: why the best contact the lead has is stopped.
        (LEAD, standing(suppressed=frozenset(Medium)), AUTO, None, None, ChannelReason.SUPPRESSED),
        (LEAD, standing(LeadBases()), WA, None, None, ChannelReason.NO_LAWFUL_BASIS),
        (replace(LEAD, phone=None), standing(suppressed=frozenset({Medium.EMAIL})), AUTO, None, None, ChannelReason.SUPPRESSED),
        (replace(LEAD, phone=None), standing(LeadBases(whatsapp=CONSENT)), AUTO, None, None, ChannelReason.NO_LAWFUL_BASIS),
        # An opt-out is the lead's own word, and weighs more than a list or a missing basis.
        (replace(LEAD, whatsapp_opted_out=True), standing(LeadBases(email=CONSENT), suppressed=frozenset({Medium.EMAIL})), AUTO, None, None, ChannelReason.OPTED_OUT),
        (replace(LEAD, email=None), standing(LeadBases()), AUTO, None, None, ChannelReason.NO_LAWFUL_BASIS),
        # The gate off: a lead without a basis is reached as before.
        (LEAD, standing(LeadBases(), frozenset()), AUTO, Channel.WHATSAPP, Channel.EMAIL_COLD, ChannelReason.BEST_SCORE),
    ],
)  # fmt: skip
def test_the_channel_decision_applies_the_law(
    lead: LeadContact,
    lawful: LawfulStanding,
    preference: ChannelPreference,
    selected: Channel | None,
    fallback: Channel | None,
    reason: ChannelReason,
) -> None:
    decision = decide_channel(lead, preference, whatsapp_capacity=True, lawful=lawful)
    assert (decision.selected, decision.fallback, decision.reason) == (selected, fallback, reason)


bases = st.sampled_from([NO_BASIS, CONSENT, Basis("EXISTING_CUSTOMER"), Basis("LEGITIMATE_INTEREST")])
standings = st.builds(
    LawfulStanding,
    bases=st.builds(LeadBases, whatsapp=bases, email=bases, objected=st.booleans()),
    allowed_bases=st.sampled_from([frozenset(), ROMANIAN, frozenset({"LEGITIMATE_INTEREST"})]),
    suppressed=st.sampled_from(
        [frozenset(), frozenset({Medium.WHATSAPP}), frozenset({Medium.EMAIL}), frozenset(Medium)]
    ),
)


@given(
    lawful=standings,
    preference=st.sampled_from(list(ChannelPreference)),
    stage=st.sampled_from(["COLD", "WARM_REPLY"]),
)
def test_a_blocked_channel_is_never_selected_nor_offered(
    lawful: LawfulStanding, preference: ChannelPreference, stage: str
) -> None:
    decision = decide_channel(replace(LEAD, stage=stage), preference, whatsapp_capacity=True, lawful=lawful)
    offered = {decision.selected, decision.fallback} - {None}
    if blocked(lawful, Medium.WHATSAPP):
        assert Channel.WHATSAPP not in offered
    if blocked(lawful, Medium.EMAIL):
        assert not offered & {Channel.EMAIL_COLD, Channel.EMAIL_WARM}
    if lawful.bases.objected:
        assert decision.reason is ChannelReason.OBJECTED


def lead_standing(lawful: LawfulStanding, **changes: object) -> LeadStanding:
    values: dict[str, object] = {
        "tenant_status": "ACTIVE",
        "stage": "CONTACTED_WA",
        "requires_human_review": False,
        "whatsapp_opted_out": False,
        "lawful": lawful,
    }
    return LeadStanding(**(values | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lawful", "changes", "refusal"),
    [
        (standing(), {}, None),
        (UNRESTRICTED, {}, None),
        (standing(LeadBases(email=CONSENT)), {}, Refusal.NO_LAWFUL_BASIS),
        (standing(LeadBases(whatsapp=CONSENT)), {}, None),  # no e-mail basis: not WhatsApp's business
        (standing(suppressed=frozenset({Medium.WHATSAPP})), {}, Refusal.SUPPRESSED),
        (standing(suppressed=frozenset({Medium.EMAIL})), {}, None),
        (standing(LeadBases(objected=True)), {}, Refusal.OBJECTED),
        # The weightiest first: the tenant, the objection, the stage, the hold, the opt-out, the list, the basis.
        (standing(LeadBases(objected=True)), {"tenant_status": "SUSPENDED"}, Refusal.TENANT_SUSPENDED),
        (standing(LeadBases(objected=True)), {"stage": "DEAD", "whatsapp_opted_out": True}, Refusal.OBJECTED),
        (standing(LeadBases(), suppressed=frozenset(Medium)), {"stage": "DEAD"}, Refusal.TERMINAL_STAGE),
        (standing(LeadBases(), suppressed=frozenset(Medium)), {"whatsapp_opted_out": True}, Refusal.WHATSAPP_OPTED_OUT),
        (standing(LeadBases(), suppressed=frozenset(Medium)), {}, Refusal.SUPPRESSED),
    ],
)  # fmt: skip
def test_the_whatsapp_refusals_apply_the_law(
    lawful: LawfulStanding, changes: dict[str, object], refusal: Refusal | None
) -> None:
    assert whatsapp_refusal(lead_standing(lawful, **changes)) is refusal


def test_the_evidence_a_message_carries() -> None:
    given_at = datetime(2026, 3, 2, 10, 15, tzinfo=timezone(timedelta(hours=2)))
    assert Basis("CONSENT", given_at, "form:https://agro.example").evidence() == {
        "basis": "CONSENT",
        "at": "2026-03-02T08:15:00Z",
        "source": "form:https://agro.example",
    }
    assert NO_BASIS.evidence() == {"basis": None, "at": None, "source": None}
