from __future__ import annotations

import random
from dataclasses import replace

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.contracts import Channel, ChannelPreference
from src.domain.channels import _RO_VALID, ChannelReason, LeadContact, decide_channel, normalize_phone
from src.domain.lawful import UNRESTRICTED

LEAD = LeadContact(
    stage="COLD",
    phone="0721 000 001",
    hlr_reachable=True,
    email="office@ferma.ro",
    email_status="valid",
    whatsapp_opted_out=False,
    email_opted_out=False,
    last_channel_used=None,
)
AUTO, WA, EMAIL = ChannelPreference.AUTO, ChannelPreference.WHATSAPP, ChannelPreference.EMAIL


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0721000001", "+40721000001"),
        ("0721 000 001", "+40721000001"),
        ("+40 721 000 001", "+40721000001"),
        ("0040721000001", "+40721000001"),
        ("0264 123 456", "+40264123456"),
        ("+4915112345678", "+4915112345678"),
        ("12345", None),
        ("not a number", None),
        ("", None),
        (None, None),
    ],
)
def test_phone_normalisation_to_e164_with_region_ro(raw: str | None, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def full_parse(raw: str) -> str | None:
    """What normalize_phone's fast path stands in for: phonenumbers' own parse and validity check."""
    try:
        number = phonenumbers.parse(raw, "RO")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_the_romanian_validity_pattern_agrees_with_phonenumbers_on_every_five_digit_prefix() -> None:
    # Every rule of the Romanian metadata decides on the first four digits at most; one random number
    # under each of the 90,000 five-digit prefixes covers them all, deterministically.
    rng = random.Random(2026)
    verdicts = {True: 0, False: 0}
    disagreements = []
    for prefix in range(10_000, 100_000):
        national = f"{prefix}{rng.randrange(10_000):04d}"
        full = phonenumbers.is_valid_number(
            phonenumbers.PhoneNumber(country_code=40, national_number=int(national))
        )
        verdicts[full] += 1
        if (_RO_VALID.fullmatch(national) is not None) != full:
            disagreements.append(national)
    assert disagreements == []
    assert verdicts[True] > 1_000
    assert verdicts[False] > 1_000


national_numbers = st.integers(min_value=100_000_000, max_value=999_999_999).map(str)
separators = st.sampled_from(["", " ", "-", ".", "  "])


@given(
    national=national_numbers,
    prefix=st.sampled_from(["0", "+40", "0040", "+40 ", "0040-", "+4", "040", "00 40", "+400"]),
    separator=separators,
    groups=st.sampled_from([(3, 3, 3), (3, 2, 2, 2), (9,), (2, 3, 4)]),
)
def test_normalisation_equals_the_full_parse_in_the_shapes_upstream_stores(
    national: str, prefix: str, separator: str, groups: tuple[int, ...]
) -> None:
    parts, start = [], 0
    for size in groups:
        parts.append(national[start : start + size])
        start += size
    raw = prefix + separator.join(parts)
    normalize_phone.cache_clear()
    assert normalize_phone(raw) == full_parse(raw)


@pytest.mark.parametrize(
    ("changes", "preference", "capacity", "selected", "fallback", "reason"),
    [
        ({}, AUTO, True, Channel.WHATSAPP, Channel.EMAIL_COLD, ChannelReason.BEST_SCORE),
        (
            {"stage": "CONTACTED_WA"},
            AUTO,
            True,
            Channel.WHATSAPP,
            Channel.EMAIL_WARM,
            ChannelReason.BEST_SCORE,
        ),
        ({"whatsapp_opted_out": True}, AUTO, True, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        ({"hlr_reachable": False}, AUTO, True, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        ({"phone": "12"}, AUTO, True, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        # e-mail replaces WhatsApp only when the tenant has no available phone at all
        ({}, AUTO, False, Channel.EMAIL_COLD, None, ChannelReason.BEST_SCORE),
        ({"email_status": "risky"}, AUTO, False, None, None, ChannelReason.NO_WHATSAPP_CAPACITY),
        (
            {"email_status": "unknown", "hlr_reachable": False},
            AUTO,
            True,
            None,
            None,
            ChannelReason.NO_VERIFIED_CONTACT,
        ),
        (
            {"whatsapp_opted_out": True, "email_opted_out": True},
            AUTO,
            True,
            None,
            None,
            ChannelReason.OPTED_OUT,
        ),
        ({"whatsapp_opted_out": True, "email": None}, AUTO, True, None, None, ChannelReason.OPTED_OUT),
        # a preference never overrides an opt-out or a missing verification (spec defect 5)
        (
            {"whatsapp_opted_out": True},
            WA,
            True,
            None,
            Channel.EMAIL_COLD,
            ChannelReason.PREFERENCE_NOT_ALLOWED,
        ),
        (
            {"email_status": "invalid"},
            EMAIL,
            True,
            None,
            Channel.WHATSAPP,
            ChannelReason.PREFERENCE_NOT_ALLOWED,
        ),
        (
            {"email_opted_out": True},
            EMAIL,
            True,
            None,
            Channel.WHATSAPP,
            ChannelReason.PREFERENCE_NOT_ALLOWED,
        ),
        ({}, EMAIL, True, Channel.EMAIL_COLD, Channel.WHATSAPP, ChannelReason.PREFERENCE),
        (
            {"stage": "WARM_REPLY"},
            EMAIL,
            True,
            Channel.EMAIL_WARM,
            Channel.WHATSAPP,
            ChannelReason.PREFERENCE,
        ),
        ({}, WA, True, Channel.WHATSAPP, Channel.EMAIL_COLD, ChannelReason.PREFERENCE),
        # the +20 continuity bonus never resurrects an opted-out WhatsApp
        (
            {"whatsapp_opted_out": True, "last_channel_used": "WHATSAPP"},
            AUTO,
            True,
            Channel.EMAIL_COLD,
            None,
            ChannelReason.BEST_SCORE,
        ),
    ],
)
def test_channel_decision_table(
    changes: dict[str, object],
    preference: ChannelPreference,
    capacity: bool,
    selected: Channel | None,
    fallback: Channel | None,
    reason: ChannelReason,
) -> None:
    decision = decide_channel(
        replace(LEAD, **changes), preference, whatsapp_capacity=capacity, lawful=UNRESTRICTED
    )  # type: ignore[arg-type]
    assert (decision.selected, decision.fallback, decision.reason) == (selected, fallback, reason)


def test_scores_follow_the_spec() -> None:
    cold = decide_channel(LEAD, AUTO, whatsapp_capacity=True, lawful=UNRESTRICTED)
    assert cold.scores == {Channel.WHATSAPP: 100, Channel.EMAIL_COLD: 70, Channel.EMAIL_WARM: 0}
    warm = decide_channel(
        replace(LEAD, stage="NEGOTIATION", last_channel_used="WHATSAPP"),
        AUTO,
        whatsapp_capacity=True,
        lawful=UNRESTRICTED,
    )
    assert warm.scores == {Channel.WHATSAPP: 120, Channel.EMAIL_COLD: 0, Channel.EMAIL_WARM: 80}


def test_verified_phone_is_the_normalised_number() -> None:
    assert (
        decide_channel(LEAD, AUTO, whatsapp_capacity=True, lawful=UNRESTRICTED).verified_phone
        == "+40721000001"
    )
    assert (
        decide_channel(
            replace(LEAD, hlr_reachable=False), AUTO, whatsapp_capacity=True, lawful=UNRESTRICTED
        ).verified_phone
        is None
    )


@pytest.mark.parametrize(
    ("stored", "status", "expected"),
    [
        ("office@ferma.ro", "valid", "office@ferma.ro"),
        ("  office@ferma.ro \u00a0", "valid", "office@ferma.ro"),
        ("\tvanzari@fermă.ro\n", "valid", "vanzari@fermă.ro"),
        ("  ion popescu@fermă.ro \u00a0", "valid", None),
        ("ion\u00a0popescu@ferma.ro", "valid", None),
        (" \u00a0 ", "valid", None),
        ("office@ferma.ro", "risky", None),
        (None, "valid", None),
    ],
)
def test_an_address_is_stripped_and_one_with_inner_whitespace_is_not_verified(
    stored: str | None, status: str, expected: str | None
) -> None:
    decision = decide_channel(
        replace(LEAD, email=stored, email_status=status), EMAIL, whatsapp_capacity=True, lawful=UNRESTRICTED
    )
    assert decision.verified_email == expected
    assert decision.has_verified_email is (expected is not None)
    assert decision.selected is (Channel.EMAIL_COLD if expected else None)


leads = st.builds(
    LeadContact,
    stage=st.sampled_from(["COLD", "CONTACTED_WA", "CONTACTED_EMAIL", "WARM_REPLY", "NEGOTIATION"]),
    phone=st.sampled_from([None, "", "0721000001", "+40 264 123 456", "12", "+4915112345678", "garbage"]),
    hlr_reachable=st.booleans(),
    email=st.sampled_from([None, "", "a@b.ro", "  ", " a@b.ro\u00a0", "a b@c.ro"]),
    email_status=st.sampled_from([None, "valid", "invalid", "risky", "unknown"]),
    whatsapp_opted_out=st.booleans(),
    email_opted_out=st.booleans(),
    last_channel_used=st.sampled_from([None, "WHATSAPP", "EMAIL_COLD", "EMAIL_WARM"]),
)
preferences = st.sampled_from(list(ChannelPreference))


@given(lead=leads, preference=preferences, capacity=st.booleans())
def test_an_opted_out_channel_is_never_selected_nor_offered(
    lead: LeadContact, preference: ChannelPreference, capacity: bool
) -> None:
    decision = decide_channel(lead, preference, whatsapp_capacity=capacity, lawful=UNRESTRICTED)
    offered = {decision.selected, decision.fallback}
    if lead.whatsapp_opted_out:
        assert Channel.WHATSAPP not in offered
    if lead.email_opted_out:
        assert Channel.EMAIL_COLD not in offered
        assert Channel.EMAIL_WARM not in offered


@given(lead=leads, preference=preferences, capacity=st.booleans())
def test_the_fallback_differs_from_the_selected_channel(
    lead: LeadContact, preference: ChannelPreference, capacity: bool
) -> None:
    decision = decide_channel(lead, preference, whatsapp_capacity=capacity, lawful=UNRESTRICTED)
    if decision.fallback is not None:
        assert decision.fallback != decision.selected


@given(lead=leads, preference=preferences, capacity=st.booleans())
def test_every_offered_channel_is_verified_and_fits_the_stage(
    lead: LeadContact, preference: ChannelPreference, capacity: bool
) -> None:
    decision = decide_channel(lead, preference, whatsapp_capacity=capacity, lawful=UNRESTRICTED)
    for channel in {decision.selected, decision.fallback} - {None}:
        if channel is Channel.WHATSAPP:
            assert capacity
            assert lead.hlr_reachable
            assert normalize_phone(lead.phone) is not None
        else:
            assert lead.email_status == "valid"
            assert decision.verified_email == (lead.email or "").strip()
            assert decision.verified_email
            assert not any(c.isspace() for c in decision.verified_email)
            assert (channel is Channel.EMAIL_COLD) == (lead.stage == "COLD")


@given(lead=leads, capacity=st.booleans())
def test_a_preference_only_chooses_among_what_auto_allows(lead: LeadContact, capacity: bool) -> None:
    auto = decide_channel(lead, AUTO, whatsapp_capacity=capacity, lawful=UNRESTRICTED)
    allowed = {channel for channel, score in auto.scores.items() if score > 0}
    for preference in (WA, EMAIL):
        decision = decide_channel(lead, preference, whatsapp_capacity=capacity, lawful=UNRESTRICTED)
        assert decision.selected is None or decision.selected in allowed
    assert (auto.selected is None) == (not allowed)
