"""Suppression entries: their values normalised, a lead's keys, and which media the entries block."""

from __future__ import annotations

import pytest

from src.domain.lawful import Medium
from src.domain.suppression import (
    Entry,
    LeadKeys,
    Matcher,
    SuppressionKind,
    domain_keys,
    email_key,
    lead_keys,
    normalized,
)

EMAIL, DOMAIN, PHONE = SuppressionKind.EMAIL, SuppressionKind.DOMAIN, SuppressionKind.PHONE


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        (EMAIL, " Office@Agro.RO ", "office@agro.ro"),
        (DOMAIN, "Agro.RO", "agro.ro"),
        (DOMAIN, "*.agro.ro", "agro.ro"),
        (DOMAIN, "@agro.ro", "agro.ro"),
        (DOMAIN, "vest.agro.ro.", "vest.agro.ro"),
        (PHONE, "0722 123 456", "+40722123456"),
        (PHONE, "+40 722-123-456", "+40722123456"),
        (PHONE, "+4915112345678", "+4915112345678"),
    ],
)
def test_values_are_stored_normalised(kind: SuppressionKind, raw: str, value: str) -> None:
    assert normalized(kind, raw) == value


@pytest.mark.parametrize(
    ("kind", "raw", "complaint"),
    [
        (EMAIL, "office", "not an e-mail address"),
        (EMAIL, "a b@agro.ro", "not an e-mail address"),
        (EMAIL, "a@b@agro.ro", "not an e-mail address"),
        (DOMAIN, "ro", "not a domain"),
        (DOMAIN, "agro..ro", "not a domain"),
        (DOMAIN, "office@agro.ro", "not a domain"),
        (PHONE, "12", "not a valid phone number"),
        (PHONE, "0722 12", "not a valid phone number"),
    ],
)
def test_bad_values_are_refused_saying_why(kind: SuppressionKind, raw: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        normalized(kind, raw)


def test_a_lead_is_named_by_its_address_every_domain_above_it_and_its_number() -> None:
    assert lead_keys("  Ana.Pop@Vest.Agro.RO\u00a0", "0722 123 456") == LeadKeys(
        "ana.pop@vest.agro.ro", ("vest.agro.ro", "agro.ro"), "+40722123456"
    )
    assert lead_keys(None, None) == LeadKeys(None, (), None)
    assert lead_keys("not an address", "12") == LeadKeys(None, (), None)
    assert email_key("a@localhost") == "a@localhost"
    assert domain_keys("a@localhost") == ()  # no domain of one label is ever an entry


def test_entries_block_the_channels_they_name_for_the_leads_they_name() -> None:
    matcher = Matcher(
        [
            Entry("DOMAIN", "agro.ro", "EMAIL"),
            Entry("PHONE", "+40722123456", "WHATSAPP"),
            Entry("EMAIL", "boss@other.ro", "ALL"),
        ]
    )
    assert matcher.suppressed(lead_keys("x@vest.agro.ro", "0733 000 111")) == {Medium.EMAIL}
    assert matcher.suppressed(lead_keys("x@agro.ro", "0722 123 456")) == {Medium.EMAIL, Medium.WHATSAPP}
    assert matcher.suppressed(lead_keys("BOSS@other.ro", None)) == set(Medium)
    assert matcher.suppressed(lead_keys("x@notagro.ro", "0722 123 457")) == set()
    assert Matcher([]).suppressed(lead_keys("x@agro.ro", None)) == set()
