"""Tenant settings that tests and benchmarks ask for by name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time
from types import MappingProxyType
from typing import Any

# Open all day every day, holidays not skipped, and unpaced: a dispatch decides on all its leads whatever
# the instant. Pacing is left off too, because its capacity depends on the hour: at 23:50 a paced phone
# has ten minutes of its day left. For every test that is not about the sending window or pacing
# (`factory.tenant(**ALWAYS_OPEN)`); a test about pacing says its pace (`{**ALWAYS_OPEN, **pace}`).
ALWAYS_OPEN: Mapping[str, Any] = MappingProxyType(
    {
        "send_window_start": time(0),
        "send_window_end": time(0),
        "send_days": [1, 2, 3, 4, 5, 6, 7],
        "skip_public_holidays": False,
        "wa_min_gap_s": 0,
        "wa_jitter_s": 0,
    }
)


def noon_zone(now: datetime) -> str:
    """A fixed-offset zone in which `now` reads between 12:00 and 12:59 (Etc/GMT-N is UTC+N): a tenant
    there has half a day of its window left at any TEST_NOW, and its local date is the UTC date."""
    offset = 12 - now.astimezone(UTC).hour
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"
