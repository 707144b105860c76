"""The one channel decision, shared by `dispatch` and `select_channel` (docs/contract.md §3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers

from src.contracts import Channel, ChannelPreference
from src.domain.lawful import Block, LawfulStanding, Medium, blocked

PHONE_REGION = "RO"
WHATSAPP_SCORE = 100
WHATSAPP_CONTINUITY_BONUS = 20
EMAIL_COLD_SCORE = 70
EMAIL_WARM_SCORE = 80


class ChannelReason(StrEnum):
    BEST_SCORE = "BEST_SCORE"
    PREFERENCE = "PREFERENCE"
    PREFERENCE_NOT_ALLOWED = "PREFERENCE_NOT_ALLOWED"
    OPTED_OUT = "OPTED_OUT"
    NO_VERIFIED_CONTACT = "NO_VERIFIED_CONTACT"
    NO_WHATSAPP_CAPACITY = "NO_WHATSAPP_CAPACITY"
    # The law's reasons (src/domain/lawful.py), which no preference overrides either.
    OBJECTED = Block.OBJECTED.value
    SUPPRESSED = Block.SUPPRESSED.value
    NO_LAWFUL_BASIS = Block.NO_LAWFUL_BASIS.value


@dataclass(frozen=True, slots=True)
class LeadContact:
    """What the channel rule needs to know about a lead and its company."""

    stage: str
    phone: str | None
    hlr_reachable: bool
    email: str | None
    email_status: str | None
    whatsapp_opted_out: bool
    email_opted_out: bool
    last_channel_used: str | None


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    selected: Channel | None
    fallback: Channel | None
    scores: dict[Channel, int]
    reason: ChannelReason
    verified_phone: str | None
    verified_email: str | None  # the address as it goes out: stripped, or None when not verified

    @property
    def has_verified_email(self) -> bool:
        return self.verified_email is not None


# The shapes upstream stages store most numbers in: 07xx xxx xxx, +40 7xx xxx xxx, 0040 7xx xxx xxx, with
# spaces, hyphens or dots. In these the national number is plain to see, and checking it against
# phonenumbers' metadata for Romania gives what a full parse would. Dispatch meets each number once a day,
# so the cache below misses, and the parse was a quarter of a dispatch's CPU. Any other shape, and any
# number the check refuses, takes the full parse.
_SEPARATORS = str.maketrans("", "", " -.")
_RO_NATIONAL = re.compile(r"(?:\+40|0040|0)([1-9][0-9]{8})")
_RO_COUNTRY_CODE = 40
_RO_NATIONAL_LENGTH = 9


def _validity_pattern(region: str, length: int) -> re.Pattern[str]:
    """phonenumbers.is_valid_number for a national number of `length` digits of `region`, as one compiled
    pattern: the general description matches, and so does the description of some number type (premium
    rate, toll free, ..., fixed line, mobile), each with its possible lengths. One regex match instead of
    a dozen function calls; tests/unit/test_channels.py proves the two agree on every prefix."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"phonenumbers has no metadata for region {region}")

    def pattern(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and length not in desc.possible_length:
            return None
        return desc.national_number_pattern

    types = [
        p
        for desc in (
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
            metadata.fixed_line,
            metadata.mobile,
        )
        if (p := pattern(desc)) is not None
    ]
    general = pattern(metadata.general_desc)
    if general is None or not types:
        return re.compile(r"(?!)")  # no number of this length is valid
    alternatives = "|".join(f"(?:{p})" for p in types)
    return re.compile(rf"(?=(?:{general})\Z)(?:{alternatives})\Z")


_RO_VALID = _validity_pattern(PHONE_REGION, _RO_NATIONAL_LENGTH)


def _plain_romanian(raw: str) -> str | None:
    match = _RO_NATIONAL.fullmatch(raw.translate(_SEPARATORS))
    if match is None:
        return None
    national = match.group(1)
    return f"+{_RO_COUNTRY_CODE}{national}" if _RO_VALID.fullmatch(national) else None


@lru_cache(maxsize=131_072)
def normalize_phone(raw: str | None) -> str | None:
    """E.164 form of a number (Romanian when it has no country code), or None when it is not valid."""
    if not raw or not raw.strip():
        return None
    plain = _plain_romanian(raw)
    if plain is not None:
        return plain
    try:
        number = phonenumbers.parse(raw, PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def verified_email(raw: str | None, status: str | None) -> str | None:
    """The address to send to, or None when it is not verified: status `valid`, and nothing but the
    address once the whitespace around it is stripped. Upstream stages store addresses as typed or pasted
    (a trailing non-breaking space is common; str.strip() removes it too); an address that still holds
    whitespace inside is not one a mail server takes, whatever its status says."""
    if raw is None or status != "valid":
        return None
    address = raw.strip()
    if len(address.split()) != 1:  # empty, or whitespace inside (str.split() splits where isspace())
        return None
    return address


def email_channel_for(stage: str) -> Channel:
    return Channel.EMAIL_COLD if stage == "COLD" else Channel.EMAIL_WARM


def medium_of(channel: Channel) -> Medium:
    """The medium whose basis and suppressions a message on `channel` answers to."""
    return Medium.WHATSAPP if channel is Channel.WHATSAPP else Medium.EMAIL


def decide_channel(
    lead: LeadContact, preference: ChannelPreference, *, whatsapp_capacity: bool, lawful: LawfulStanding
) -> ChannelDecision:
    """Pick the channel for a lead.

    `whatsapp_capacity` says whether the tenant has any available phone: e-mail replaces WhatsApp only
    when it has none. Opt-outs and the law (`lawful`: objection, suppression, basis) are absolute, a
    preference only chooses among allowed channels, and the fallback is always an allowed channel other
    than the selected one.
    """
    verified_phone = normalize_phone(lead.phone) if lead.hlr_reachable else None
    email = verified_email(lead.email, lead.email_status)
    email_channel = email_channel_for(lead.stage)
    whatsapp_stop = _stop(verified_phone, lead.whatsapp_opted_out, lawful, Medium.WHATSAPP)
    if whatsapp_stop is None and not whatsapp_capacity:
        whatsapp_stop = ChannelReason.NO_WHATSAPP_CAPACITY
    email_stop = _stop(email, lead.email_opted_out, lawful, Medium.EMAIL)

    scores = {Channel.WHATSAPP: 0, Channel.EMAIL_COLD: 0, Channel.EMAIL_WARM: 0}
    if whatsapp_stop is None:
        bonus = WHATSAPP_CONTINUITY_BONUS if lead.last_channel_used == Channel.WHATSAPP else 0
        scores[Channel.WHATSAPP] = WHATSAPP_SCORE + bonus
    if email_stop is None:
        scores[email_channel] = EMAIL_COLD_SCORE if email_channel is Channel.EMAIL_COLD else EMAIL_WARM_SCORE

    ranked = [channel for channel in sorted(scores, key=lambda c: -scores[c]) if scores[channel] > 0]
    if preference is ChannelPreference.AUTO:
        wanted = ranked[0] if ranked else None
    else:
        wanted = Channel.WHATSAPP if preference is ChannelPreference.WHATSAPP else email_channel
    selected = wanted if wanted in ranked else None
    fallback = next((channel for channel in ranked if channel is not selected), None)

    if selected is not None:
        reason = (
            ChannelReason.BEST_SCORE if preference is ChannelPreference.AUTO else ChannelReason.PREFERENCE
        )
    elif ranked:
        reason = ChannelReason.PREFERENCE_NOT_ALLOWED
    else:
        # Nothing allowed: an objection says so first; else why the best contact the lead has is stopped.
        assert whatsapp_stop is not None
        assert email_stop is not None
        reason = whatsapp_stop if verified_phone or whatsapp_stop is ChannelReason.OBJECTED else email_stop
    return ChannelDecision(selected, fallback, scores, reason, verified_phone, email)


def _stop(
    contact: str | None, opted_out: bool, lawful: LawfulStanding, medium: Medium
) -> ChannelReason | None:
    """Why a medium is not allowed for the lead, the weightiest reason first; None when it is."""
    block = blocked(lawful, medium)
    if block is Block.OBJECTED:
        return ChannelReason.OBJECTED
    if contact is None:
        return ChannelReason.NO_VERIFIED_CONTACT
    if opted_out:
        return ChannelReason.OPTED_OUT
    return ChannelReason(block.value) if block is not None else None
