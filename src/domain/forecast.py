"""When will the due backlog have gone out? A day-by-day forecast from the rules dispatch applies.

Pure: it takes `now` and rows, no I/O. Each tenant-local day it runs the backlog through the dispatch
decision itself (`plan_batch`: the channel rule, sticky phones, the allocator), with every phone's daily
limit replaced by what it can send that day: its effective limit (warm-up included), less what it has
reserved already, capped by the pacing slots left in the window; then the WhatsApp messages are capped
by the tenant's portfolio budget. What does not go out one day is due again the next, as in dispatch.

Approximations, so that an operator reads the figures right: each jitter counts at its mean; a recipient
messaged in the last 24 h counts against the portfolio budget again; the window is counted on the day
it opens, also when it runs past midnight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from uuid import UUID

from src.contracts import Channel, ChannelPreference
from src.domain.allocation import BatchAllocator, PhoneState
from src.domain.dispatch import DueLead, Outcome, plan_batch
from src.domain.lawful import Medium
from src.domain.senders import PORTFOLIO_WINDOW, Pace, effective_daily_limit, pacing_capacity
from src.domain.windows import CRON_EVERY_MINUTES, SendingWindow

MAX_DAYS = 90
CRON_BATCH_SIZE = 100  # the cron's dispatch takes DispatchJobData's default batchSize at every tick


@dataclass(frozen=True, slots=True)
class SenderPhone:
    """A phone and its warm-up; `state.used_today` and `next_free` are today's (the counter, pace_key)."""

    state: PhoneState
    warmup_started_on: date | None
    warmup_initial_limit: int
    warmup_daily_increase: int
    next_free: datetime | None = None

    def limit_on(self, day: date) -> int:
        return effective_daily_limit(
            self.state.daily_limit,
            self.warmup_started_on,
            self.warmup_initial_limit,
            self.warmup_daily_increase,
            day,
        )


@dataclass(frozen=True, slots=True)
class ForecastInput:
    tenant_id: UUID
    window: SendingWindow
    pace: Pace
    portfolio_limit: int | None
    portfolio_scores: Sequence[datetime]  # each recipient's latest scheduled message (portfolio_key)
    phones: Sequence[SenderPhone]
    backlog: Sequence[DueLead]  # the due leads, in the order dispatch takes them
    allowed_bases: frozenset[str] = frozenset()
    suppressed: Mapping[UUID, frozenset[Medium]] = field(default_factory=dict)
    preference: ChannelPreference = ChannelPreference.AUTO
    suspended: bool = False  # the cron dispatches ACTIVE tenants only


@dataclass(frozen=True, slots=True)
class ForecastDay:
    day: date
    opens: datetime | None  # None: no window that day (`closed`)
    closes: datetime | None
    closed: str | None  # why nothing goes out: a holiday's name, not a send day, the window is over
    whatsapp_capacity: int
    dispatched: Mapping[Channel, int]
    backlog_left: int

    @property
    def total(self) -> int:
        return sum(self.dispatched.values())


@dataclass(frozen=True, slots=True)
class Forecast:
    now: datetime
    backlog: int  # due leads now
    no_channel: int  # due leads with no allowed channel: dispatch rechecks them, none goes out
    days: list[ForecastDay]

    @property
    def clears_on(self) -> date | None:
        """The first day at whose end no dispatchable lead is left; None when not within the days."""
        return next((d.day for d in self.days if d.backlog_left == 0), None)


def forecast(data: ForecastInput, *, now: datetime, days: int) -> Forecast:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, got {days}")
    waiting = list(data.backlog)
    no_channel = 0
    today = data.window.local_date(now)
    out = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        opens, closes, closed = _window_on(data.window, day, now, suspended=data.suspended)
        if closed is not None or opens is None or closes is None:
            out.append(ForecastDay(day, opens, closes, closed, 0, _no_dispatch(), len(waiting)))
            continue
        capacity = {p.state.id: _phone_capacity(data, p, day, opens, closes, now) for p in data.phones}
        budget = _portfolio_budget(data, closes)
        sent, waiting, dropped = _dispatch_day(data, waiting, capacity, budget, _leads_per_day(opens, closes))
        no_channel += dropped
        whatsapp = min(sum(capacity.values()), budget) if budget is not None else sum(capacity.values())
        out.append(ForecastDay(day, opens, closes, None, whatsapp, sent, len(waiting)))
    return Forecast(now, len(data.backlog), no_channel, out)


def _no_dispatch() -> dict[Channel, int]:
    return dict.fromkeys(Channel, 0)


def _window_on(
    window: SendingWindow, day: date, now: datetime, *, suspended: bool
) -> tuple[datetime | None, datetime | None, str | None]:
    """The part of `day`'s window still to come: [max(now, opens), closes), or why there is none."""
    if suspended:
        return None, None, "the tenant is SUSPENDED: the cron dispatches none of its leads"
    closed = window.closed_because(day)
    if closed is not None:
        return None, None, closed
    opens, closes = window.opening_of(day)
    if now >= closes:
        return opens, closes, "the window has closed for today"
    return max(opens, now), closes, None


def _phone_capacity(
    data: ForecastInput, phone: SenderPhone, day: date, start: datetime, closes: datetime, now: datetime
) -> int:
    """What one phone sends on `day`: its effective limit less today's reservations, capped by the pacing
    slots from its next free instant to the window's close."""
    first_day = day == data.window.local_date(now)
    room = phone.limit_on(day) - (phone.state.used_today if first_day else 0)
    if first_day and phone.next_free is not None:
        start = max(start, phone.next_free)
    slots = pacing_capacity(start, closes, data.pace)
    return max(0, room if slots is None else min(room, slots))


def _portfolio_budget(data: ForecastInput, closes: datetime) -> int | None:
    """Unique recipients the tenant may still message by the window's close: the limit less those whose
    latest message is within the 24 h before it."""
    if data.portfolio_limit is None:
        return None
    since = closes - PORTFOLIO_WINDOW
    return max(0, data.portfolio_limit - sum(1 for at in data.portfolio_scores if at > since))


def _leads_per_day(opens: datetime, closes: datetime) -> int:
    """The most leads the cron's dispatch looks at in the window: one batch a tick."""
    ticks = -(-int((closes - opens).total_seconds()) // (CRON_EVERY_MINUTES * 60))
    return max(1, ticks) * CRON_BATCH_SIZE


def _dispatch_day(
    data: ForecastInput,
    waiting: list[DueLead],
    capacity: Mapping[UUID, int],
    budget: int | None,
    looked_at: int,
) -> tuple[dict[Channel, int], list[DueLead], int]:
    """One day of dispatch: the messages per channel, the leads still due after it, and how many leads
    turned out to have no channel at all (they leave the backlog: no day sends them)."""
    phones = [p.state._replace(daily_limit=capacity[p.state.id], used_today=0) for p in data.phones]
    decisions = plan_batch(
        waiting[:looked_at],
        preference=data.preference,
        allocator=BatchAllocator(data.tenant_id, phones),
        allowed_bases=data.allowed_bases,
        suppressed=data.suppressed,
    )
    sent = _no_dispatch()
    left: list[DueLead] = []
    dropped = 0
    for decision in decisions:
        if decision.outcome is Outcome.SKIPPED_NO_CHANNEL:
            dropped += 1
        elif decision.outcome is Outcome.DISPATCHED and decision.channel is not None:
            if decision.channel is Channel.WHATSAPP and budget is not None:
                if budget <= 0:
                    left.append(decision.lead)
                    continue
                budget -= 1
            sent[decision.channel] += 1
        else:
            left.append(decision.lead)
    return sent, left + waiting[looked_at:], dropped
