"""Sending windows in the tenant's timezone, its weekdays and its public holidays; the cron tick grid.

All functions take aware datetimes and return aware UTC datetimes. A window whose start is after its end
wraps past midnight and belongs to the day it opens on; a window whose start equals its end is open all day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

CRON_EVERY_MINUTES = 5
_SEARCH_DAYS = 400


@lru_cache(maxsize=512)
def _holiday_calendar(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


@lru_cache(maxsize=64)
def _holiday_names(country: str, year: int) -> dict[date, str]:
    return dict(holidays.country_holidays(country, years=year).items())


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc


def _check_country(country: str) -> None:
    if not country.strip():
        # An empty code used to read as "no country" and silently turn holiday skipping off.
        raise ValueError(
            "holiday_country is empty while skip_public_holidays is on: set the country whose public "
            "holidays to skip (e.g. 'RO'), or turn skip_public_holidays off"
        )
    try:
        _holiday_calendar(country, 2000)
    except NotImplementedError as exc:
        raise ValueError(f"unknown holiday country {country!r}") from exc


def window_bound(value: str, field: str, *, end: bool) -> time:
    """A window's start or end as PostgreSQL writes a time ('HH:MM:SS[.ffffff]').

    PostgreSQL also stores '24:00'. As an end it is the midnight that ends the day, which a window here
    writes 00:00 (a start after its end runs to the midnight after it; equal bounds are all day): so
    09:00-24:00 is open until midnight and 00:00-24:00 all day. As a start it would open the window on
    the day after the one `send_days` names, so it is refused.
    """
    if value.startswith("24:"):
        if end:
            return time(0)
        raise ValueError(f"{field} is {value}: a window starts within its day (00:00 to 23:59:59)")
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{field} {value!r} is not a time of day") from exc


def utc_iso(moment: datetime) -> str:
    """An aware datetime as pydantic writes it in JSON mode: ISO 8601, UTC as Z."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)  # asyncpg's are UTC already
    return utc.isoformat().replace("+00:00", "Z")


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of `tz` first reads `wall` on `day`.

    An ambiguous wall time (clocks going back) is its first occurrence. A wall time that does not exist
    (clocks going forward) is the instant the clocks jump over it.
    """
    naive = datetime.combine(day, wall)
    early = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if early.astimezone(tz).replace(tzinfo=None) == naive:
        return early
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = early
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class SendingWindow:
    timezone: str
    start: time
    end: time
    days: frozenset[int]
    holiday_country: str | None  # the country whose public holidays are skipped; None skips none

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not self.days <= frozenset(range(1, 8)):
            raise ValueError(f"send days must be ISO weekdays 1-7, got {sorted(self.days)}")
        if self.holiday_country is not None:  # None: holidays are not skipped
            _check_country(self.holiday_country)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def is_send_day(self, day: date) -> bool:
        if day.isoweekday() not in self.days:
            return False
        return not (self.holiday_country and day in _holiday_calendar(self.holiday_country, day.year))

    def closed_because(self, day: date) -> str | None:
        """Why no window opens on `day`: the public holiday's name, or that the weekday is not a send day;
        None on a send day."""
        if day.isoweekday() not in self.days:
            return f"{day:%A} is not a send day"
        if self.holiday_country:
            name = _holiday_names(self.holiday_country, day.year).get(day)
            if name is not None:
                return f"public holiday: {name}"
        return None

    def opening_of(self, day: date) -> tuple[datetime, datetime]:
        """The [open, close) instants of the window that opens on `day` (whether or not it is a send day)."""
        opens = local_instant(day, self.start, self.tz)
        close_day = day if self.start < self.end else day + timedelta(days=1)
        closes = local_instant(close_day, self.end, self.tz)
        return opens, closes

    def is_open(self, at: datetime) -> bool:
        today = self.local_date(at)
        for day in (today - timedelta(days=1), today):
            if self.is_send_day(day):
                opens, closes = self.opening_of(day)
                if opens <= at < closes:
                    return True
        return False

    def next_opening(self, at: datetime) -> datetime | None:
        """`at` itself when the window is open then, otherwise the next instant it opens; None if never."""
        if self.is_open(at):
            return at.astimezone(UTC)
        today = self.local_date(at)
        for offset in range(_SEARCH_DAYS):
            day = today + timedelta(days=offset)
            if self.is_send_day(day):
                opens, _ = self.opening_of(day)
                if opens > at:
                    return opens
        return None

    def day_start(self, day: date) -> datetime:
        """The first instant of tenant-local date `day`."""
        return local_instant(day, time(0, 0), self.tz)

    def next_day_start(self, at: datetime) -> datetime:
        """The instant the tenant-local date after `at`'s begins (its first instant, should a DST change
        skip its midnight). A local day is 23, 24 or 25 hours long, so `at` + 24 h may not be there yet."""
        return local_instant(self.local_date(at) + timedelta(days=1), time(0, 0), self.tz)

    def next_quota_day_opening(self, at: datetime) -> datetime | None:
        """The first open instant on a later tenant-local date, when a fresh daily quota applies."""
        return self.next_opening(self.next_day_start(at))


_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=4096)
def opening_on(window: SendingWindow, day: date) -> tuple[datetime, datetime] | None:
    """`window.opening_of(day)` on a send day, None on another, memoised: every route job asks, and each
    opening costs the window several timezone conversions."""
    return window.opening_of(day) if window.is_send_day(day) else None


@lru_cache(maxsize=4096)
def quota_day(window: SendingWindow, day: date) -> tuple[datetime, datetime]:
    """The [first instant, first instant of the next) of tenant-local date `day`, memoised."""
    return window.day_start(day), window.day_start(day + _ONE_DAY)


def next_cron_tick(after: datetime, every_minutes: int = CRON_EVERY_MINUTES) -> datetime:
    """The first tick of the */N-minute cron strictly after `after`."""
    at = after.astimezone(UTC)
    floor = at.replace(minute=at.minute - at.minute % every_minutes, second=0, microsecond=0)
    return floor + timedelta(minutes=every_minutes)


def cron_tick_at_or_after(at: datetime, every_minutes: int = CRON_EVERY_MINUTES) -> datetime:
    at = at.astimezone(UTC)
    if at.minute % every_minutes == 0 and at.second == 0 and at.microsecond == 0:
        return at
    return next_cron_tick(at, every_minutes)


def cron_tick_floor(at: datetime, every_minutes: int = CRON_EVERY_MINUTES) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % every_minutes, second=0, microsecond=0)


def next_dispatch_at(window: SendingWindow, now: datetime) -> datetime | None:
    """The next cron tick at which the window is open: `nextDispatchAt` of a dispatch result."""
    tick = next_cron_tick(now)
    for _ in range(2 * _SEARCH_DAYS):
        opening = window.next_opening(tick)
        if opening is None:
            return None
        if opening == tick:
            return tick
        tick = cron_tick_at_or_after(opening)
    return None
