"""WhatsApp sender safety as pure rules: the warm-up of a new number, the pacing of one phone's sends,
and the portfolio budget of a tenant (migration 0006, docs/contract.md).

Every rule that reads a phone's daily limit reads `effective_daily_limit`: dispatch, allocate_phone's
weights, route, status and metrics. The Lua reservation (src/redis_io/quota_ledger.py) applies
`next_slot` atomically; the forecast applies `pacing_capacity` to days to come.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

PORTFOLIO_WINDOW = timedelta(hours=24)


def effective_daily_limit(
    daily_limit: int, warmup_started_on: date | None, initial_limit: int, daily_increase: int, day: date
) -> int:
    """min(daily_limit, initial + increase * (day - start)) on tenant-local date `day`; `daily_limit` for a
    warmed-up number (no start). A day before the start counts as the start day."""
    if warmup_started_on is None:
        return daily_limit
    days_in = max(0, (day - warmup_started_on).days)
    return max(0, min(daily_limit, initial_limit + daily_increase * days_in))


def warmup_day(
    daily_limit: int, warmup_started_on: date | None, initial_limit: int, daily_increase: int, day: date
) -> int | None:
    """Day k of the warm-up (1 on the start day) while it still holds the number below its daily_limit;
    None once the number is warmed up."""
    if warmup_started_on is None:
        return None
    limit = effective_daily_limit(daily_limit, warmup_started_on, initial_limit, daily_increase, day)
    if limit >= daily_limit:
        return None
    return max(0, (day - warmup_started_on).days) + 1


@dataclass(frozen=True, slots=True)
class Pace:
    """Two messages of one phone at least `min_gap_s` apart, plus 0..`jitter_s` seconds at random."""

    min_gap_s: int
    jitter_s: int

    def __post_init__(self) -> None:
        if self.min_gap_s < 0 or self.jitter_s < 0:
            raise ValueError(
                f"wa_min_gap_s and wa_jitter_s must be >= 0, got {self.min_gap_s} and {self.jitter_s}"
            )

    @property
    def off(self) -> bool:
        return self.min_gap_s == 0 and self.jitter_s == 0

    def gap_ms(self, job_id: str) -> int:
        """The gap after the message of `job_id`: min_gap plus its jitter, uniform in [0, jitter_s] s.
        Drawn from the job id, not from a generator, so that a job re-planned after a crash gets the same
        gap, and two processes agree on it."""
        if not self.jitter_s:
            return self.min_gap_s * 1000
        digest = hashlib.blake2b(job_id.encode(), digest_size=8).digest()
        return self.min_gap_s * 1000 + int.from_bytes(digest, "big") % (self.jitter_s * 1000 + 1)


def next_slot(free_ms: int, now_ms: int, opens_ms: int, closes_ms: int) -> int | None:
    """The send time of a phone's next message: the first instant that is not before now, the window's
    opening or the phone's next free instant; None when that is not before the window closes
    (WINDOW_FULL). The Lua reservation mirrors this."""
    slot = max(free_ms, now_ms, opens_ms)
    return slot if slot < closes_ms else None


def pacing_capacity(start: datetime, closes: datetime, pace: Pace) -> int | None:
    """How many messages one phone sends in [start, closes) at `pace`, counting each jitter at its mean:
    the forecast's figure. None when pacing is off (no cap from pacing)."""
    if pace.off:
        return None
    span_ms = (closes - start).total_seconds() * 1000
    if span_ms <= 0:
        return 0
    mean_gap_ms = pace.min_gap_s * 1000 + pace.jitter_s * 500
    return int((span_ms - 1) // mean_gap_ms) + 1
