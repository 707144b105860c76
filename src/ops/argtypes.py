"""argparse types: a bad value is refused by the parser with its usage line, before anything connects."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from src.contracts import ALL_TENANTS
from src.domain.channels import PHONE_REGION, normalize_phone
from src.domain.suppression import SuppressionKind, normalized

QUEUE_SLOT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # the CHECK constraint of wa_phone_numbers.queue_slot


def uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def tenant_selector(value: str) -> UUID | str:
    if value == ALL_TENANTS:
        return value
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a tenant UUID nor {ALL_TENANTS!r}: {value!r}") from None


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{number} is out of range ({bounds})")
        return number

    parse.__name__ = "number"
    return parse


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value}")
    return seconds


def json_object(value: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(parsed).__name__}")
    return parsed


def e164(value: str) -> str:
    """A phone number in E.164; a number without a country code is read as Romanian."""
    number = normalize_phone(value)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"not a valid phone number: {value!r} (E.164 like +40722123456, or a national "
            f"{PHONE_REGION} number like 0722 123 456)"
        )
    return number


def queue_slot(value: str) -> str:
    if not QUEUE_SLOT.match(value):
        raise argparse.ArgumentTypeError(
            f"not a queue slot: {value!r} (1-32 letters, digits, '_' or '-'; the queue is q:wa:phone_<slot>)"
        )
    return value


def suppressed(kind: SuppressionKind) -> Callable[[str], str]:
    """A suppression entry's value of `kind`, normalised as it is stored."""

    def parse(value: str) -> str:
        try:
            return normalized(kind, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.lower()
    return parse


def instant(value: str) -> datetime:
    """An ISO 8601 instant with its offset (2026-03-02T10:15:00+02:00, or Z for UTC)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no offset: add one, like +02:00 or Z")
    return moment
