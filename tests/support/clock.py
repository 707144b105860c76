"""The tests' clock: the instant a test starts at (TEST_NOW), and how a worker process is put there too.

TEST_NOW moves the whole suite: an ISO 8601 instant with its offset (`2026-12-01T10:00:00+02:00`), or
`now` for the real current instant, read when each test starts. Unset, every test starts at OPEN_HOURS.
Tests about the calendar (the sending window, DST, holidays) set their own instants and ignore it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

# A Wednesday, 10:00 in Bucharest: inside the default sending window, not a Romanian holiday.
OPEN_HOURS = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def configured_now() -> datetime:
    """The instant TEST_NOW names (aware, UTC); OPEN_HOURS when it is unset."""
    value = os.environ.get("TEST_NOW", "").strip()
    if not value:
        return OPEN_HOURS
    if value.lower() == "now":
        return datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"TEST_NOW={value!r} is neither `now` nor an ISO 8601 instant") from None
    if instant.utcoffset() is None:
        raise ValueError(f"TEST_NOW={value!r} has no UTC offset: write it as 2026-12-01T10:00:00+02:00")
    return instant.astimezone(UTC)


def clock_shift_s(now: datetime) -> float:
    """The CLOCK_SHIFT_S that makes a worker process's clock (the host's clock plus the shift, see
    src/runtime/clock.py) read `now` at this moment, and run on from there."""
    return (now - datetime.now(UTC)).total_seconds()


def as_slot(at: datetime) -> datetime:
    """`at` as a pacing slot holds it: in whole milliseconds (the slots are epoch ms, as queue scores are)."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
