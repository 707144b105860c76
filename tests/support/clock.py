"""The tests' clock."""

from __future__ import annotations

from datetime import UTC, datetime

# A Wednesday, 10:00 in Bucharest: inside the default sending window, not a Romanian holiday.
OPEN_HOURS = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
