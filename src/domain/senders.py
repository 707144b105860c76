"""WhatsApp sender safety as pure rules: the warm-up of a new number, the pacing of one phone's sends,
and the portfolio budget of a tenant (migration 0006, docs/contract.md).

Every rule that reads a phone's daily limit reads `effective_daily_limit`: dispatch, allocate_phone's
weights, route, status and metrics. The Lua reservation (src/redis_io/quota_ledger.py) applies
`next_slot` atomically; the forecast applies `pacing_capacity` to days to come.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from src.domain.windows import SendingWindow, opening_on, quota_day

PORTFOLIO_WINDOW = timedelta(hours=24)


class Shortfall(StrEnum):
    """Why a WhatsApp message got no reservation: the phone's quota is spent, no slot is left in today's
    window at the phone's pace, or the tenant's 24 h portfolio budget is spent."""

    QUOTA = "QUOTA"
    WINDOW_FULL = "WINDOW_FULL"
    PORTFOLIO_LIMIT = "PORTFOLIO_LIMIT"


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


def slot_bounds(window: SendingWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The [opens, closes) a message due at `at` may be scheduled in: the opening of the window that
    holds `at`, ending no later than `at`'s tenant-local date, whose quota the message uses (a window
    that wraps past midnight is two quota days). None when the window is closed at `at`."""
    today = window.local_date(at)
    for day in (today - timedelta(days=1), today):
        opening = opening_on(window, day)  # memoised, as the quota day: every route job asks
        if opening is not None and opening[0] <= at < opening[1]:
            starts, ends = quota_day(window, today)
            return max(opening[0], starts), min(opening[1], ends)
    return None


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


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One message to schedule: on `phone_id`, followed by a gap of `gap_ms`, to `recipient` (E.164)."""

    key: UUID
    phone_id: UUID
    gap_ms: int
    recipient: str | None


def plan_slots(
    requests: Sequence[SlotRequest],
    *,
    free_ms: Mapping[UUID, int],
    bounds_ms: tuple[int, int, int],
    budget_left: int | None,
    seen: frozenset[str],
) -> dict[UUID, int | Shortfall]:
    """What the Lua reservation would schedule, without reserving (a dry run's plan): each request's slot
    on its phone, in order, or why it gets none. `free_ms`: each phone's next free instant;
    `bounds_ms`: now, opens, closes; `budget_left`: the portfolio's room (None: no limit); `seen`: the
    recipients already counted in it."""
    now_ms, opens_ms, closes_ms = bounds_ms
    free = dict(free_ms)
    counted = set(seen)
    planned: dict[UUID, int | Shortfall] = {}
    for request in requests:
        fresh = request.recipient is not None and request.recipient not in counted
        if budget_left is not None and fresh and budget_left <= 0:
            planned[request.key] = Shortfall.PORTFOLIO_LIMIT
            continue
        slot = next_slot(free.get(request.phone_id, 0), now_ms, opens_ms, closes_ms)
        if slot is None:
            planned[request.key] = Shortfall.WINDOW_FULL
            continue
        free[request.phone_id] = max(free.get(request.phone_id, 0), slot + request.gap_ms)
        if fresh and request.recipient is not None:
            counted.add(request.recipient)
            budget_left = None if budget_left is None else budget_left - 1
        planned[request.key] = slot
    return planned
