"""Suppression lists: what an entry's value is once normalised, and which entries stop which of a lead's
media. Matching happens in one place, here; the SQL only finds the entries whose values are a lead's keys.

An entry identifies leads by its kind: their e-mail address (EMAIL), the domain of their address or any
domain above it (DOMAIN: `agro.ro` covers `office@agro.ro` and `office@vest.agro.ro`), or their number
(PHONE, E.164). It blocks the channel it names, or both (ALL). An entry without a tenant applies to every
tenant. Values are stored normalised: a lower-case address, a lower-case domain, an E.164 number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from src.domain.channels import normalize_phone
from src.domain.lawful import Medium


class SuppressionKind(StrEnum):
    EMAIL = "EMAIL"
    DOMAIN = "DOMAIN"
    PHONE = "PHONE"


class SuppressionChannel(StrEnum):
    EMAIL = "EMAIL"
    WHATSAPP = "WHATSAPP"
    ALL = "ALL"


MEDIA_OF: dict[str, frozenset[Medium]] = {
    SuppressionChannel.EMAIL: frozenset({Medium.EMAIL}),
    SuppressionChannel.WHATSAPP: frozenset({Medium.WHATSAPP}),
    SuppressionChannel.ALL: frozenset(Medium),
}

# The same shapes as the CHECK constraints of the suppressions table (migration 0005).
_ADDRESS = re.compile(r"[^@\s]+@([^@\s]+)")
_DOMAIN = re.compile(r"[^@\s.]+(?:\.[^@\s.]+)+")


def email_key(raw: str | None) -> str | None:
    """A lead's address as suppression entries name it (stripped, lower case); None when it is no address.
    The address's status does not matter: an entry stops every channel it names for whoever owns it."""
    if raw is None:
        return None
    address = raw.strip().lower()
    return address if _ADDRESS.fullmatch(address) else None


def domain_keys(address: str | None) -> tuple[str, ...]:
    """The domain of a normalised address and every domain above it with two labels or more:
    `vest.agro.ro`, `agro.ro`."""
    if address is None:
        return ()
    labels = address.rsplit("@", 1)[1].split(".")
    return tuple(".".join(labels[start:]) for start in range(len(labels) - 1))


def normalized(kind: SuppressionKind, raw: str) -> str:
    """An entry's value as stored; ValueError saying what is wrong with it."""
    value = raw.strip()
    if kind is SuppressionKind.PHONE:
        number = normalize_phone(value)
        if number is None:
            raise ValueError(f"not a valid phone number: {raw!r} (E.164, or a national RO number)")
        return number
    value = value.lower()
    if kind is SuppressionKind.EMAIL:
        if not _ADDRESS.fullmatch(value):
            raise ValueError(f"not an e-mail address: {raw!r}")
        return value
    value = value.removeprefix("@").removeprefix("*.").rstrip(".")
    if not _DOMAIN.fullmatch(value):
        raise ValueError(f"not a domain: {raw!r} (a name with at least two labels, like agro.ro)")
    return value


class LeadKeys(NamedTuple):
    """The values under which entries can name a lead (a named tuple: dispatch makes one per lead)."""

    email: str | None
    domains: tuple[str, ...]
    phone: str | None

    def pairs(self) -> Iterable[tuple[str, str]]:
        """(kind, value) of every key."""
        if self.email is not None:
            yield SuppressionKind.EMAIL, self.email
        for domain in self.domains:
            yield SuppressionKind.DOMAIN, domain
        if self.phone is not None:
            yield SuppressionKind.PHONE, self.phone


def lead_keys(email: str | None, phone: str | None) -> LeadKeys:
    """A lead's keys from its company's address and number as stored."""
    address = email_key(email)
    return LeadKeys(address, domain_keys(address), normalize_phone(phone))


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    value: str
    channel: str


class Matcher:
    """Entries found for a batch, by key: the media they block for each lead."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._media: dict[tuple[str, str], frozenset[Medium]] = {}
        for entry in entries:
            key = (entry.kind, entry.value)
            self._media[key] = self._media.get(key, frozenset()) | MEDIA_OF[entry.channel]

    def __bool__(self) -> bool:
        """Whether any entry was found at all."""
        return bool(self._media)

    def suppressed(self, keys: LeadKeys) -> frozenset[Medium]:
        if not self._media:
            return frozenset()
        media: frozenset[Medium] = frozenset()
        for pair in keys.pairs():
            media |= self._media.get(pair, frozenset())
        return media
