"""The daily WhatsApp quota: which tenant-local day a send counts against."""

from __future__ import annotations

from datetime import date, datetime

from src.domain.windows import zone


def quota_date(now: datetime, timezone: str) -> date:
    """The tenant-local calendar date: the day whose counter a send made at `now` is reserved on."""
    return now.astimezone(zone(timezone)).date()


def remaining(daily_limit: int, used: int) -> int:
    return max(0, daily_limit - used)
