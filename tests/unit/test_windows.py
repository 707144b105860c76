from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from src.domain.quota import quota_date
from src.domain.windows import (
    SendingWindow,
    cron_tick_at_or_after,
    cron_tick_floor,
    local_instant,
    next_cron_tick,
    next_dispatch_at,
    window_bound,
)

BUCHAREST = ZoneInfo("Europe/Bucharest")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
OFFICE = SendingWindow("Europe/Bucharest", time(9), time(18), WEEKDAYS, "RO")
NIGHT = SendingWindow("Europe/Bucharest", time(22), time(6), frozenset({5}), None)  # Friday nights


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BUCHAREST)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (local(2026, 11, 25, 10, 0), True),  # Wednesday morning
        (local(2026, 11, 25, 9, 0), True),  # opening instant is inside
        (local(2026, 11, 25, 18, 0), False),  # closing instant is outside
        (local(2026, 11, 25, 8, 59), False),
        (local(2026, 11, 28, 10, 0), False),  # Saturday
        (local(2026, 12, 1, 10, 0), False),  # Ziua Națională, a Tuesday
        (local(2026, 12, 25, 10, 0), False),  # Crăciunul
        (local(2027, 1, 2, 10, 0), False),  # 2 January is a Romanian holiday too (a Saturday in 2027)
    ],
)
def test_office_window(moment: datetime, is_open: bool) -> None:
    assert OFFICE.is_open(moment) is is_open


def test_holidays_count_only_when_the_tenant_skips_them() -> None:
    works_holidays = SendingWindow("Europe/Bucharest", time(9), time(18), WEEKDAYS, None)
    assert works_holidays.is_open(local(2026, 12, 1, 10, 0))


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (local(2026, 11, 27, 23, 0), True),  # Friday 23:00
        (local(2026, 11, 28, 2, 0), True),  # Saturday 02:00 belongs to Friday's window
        (local(2026, 11, 28, 6, 0), False),
        (local(2026, 11, 28, 23, 0), False),  # Saturday night is not a send day
        (local(2026, 11, 27, 2, 0), False),  # Friday 02:00 belongs to Thursday's window
    ],
)
def test_window_that_wraps_past_midnight(moment: datetime, is_open: bool) -> None:
    assert NIGHT.is_open(moment) is is_open


def test_window_hours_follow_daylight_saving_time() -> None:
    # The window opens at 09:00 local: 07:00 UTC in winter (EET), 06:00 UTC in summer (EEST).
    assert OFFICE.next_opening(local(2026, 3, 27, 19, 0)) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert OFFICE.next_opening(local(2026, 10, 23, 19, 0)) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_local_instant_in_a_dst_gap_and_overlap() -> None:
    # 29 March 2026: 03:00 EET jumps to 04:00 EEST, so 03:30 never happens; it starts at the jump.
    assert local_instant(date(2026, 3, 29), time(3, 30), BUCHAREST) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # 25 October 2026: 04:00 EEST falls back to 03:00 EET, so 03:30 happens twice; the first counts.
    assert local_instant(date(2026, 10, 25), time(3, 30), BUCHAREST) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_window_opening_inside_a_dst_gap() -> None:
    every_day = SendingWindow("Europe/Bucharest", time(3, 30), time(12), frozenset(range(1, 8)), None)
    assert every_day.next_opening(local(2026, 3, 29, 0, 0)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 11, 25, 10, 2), local(2026, 11, 25, 10, 5)),  # next tick, inside the window
        (local(2026, 11, 25, 10, 5), local(2026, 11, 25, 10, 10)),  # strictly after a tick
        (local(2026, 11, 25, 17, 57), local(2026, 11, 26, 9, 0)),  # the 18:00 tick is closed
        (local(2026, 11, 20, 18, 30), local(2026, 11, 23, 9, 0)),  # Friday evening -> Monday
        (local(2026, 11, 27, 18, 30), local(2026, 12, 2, 9, 0)),  # skips Sfântul Andrei and 1 December
        (local(2026, 11, 25, 6, 0), local(2026, 11, 25, 9, 0)),  # before opening
    ],
)
def test_next_dispatch_at_is_the_next_tick_inside_the_window(now: datetime, expected: datetime) -> None:
    assert next_dispatch_at(OFFICE, now) == expected


def test_next_dispatch_at_with_an_odd_opening_time_rounds_up_to_a_tick() -> None:
    window = SendingWindow("Europe/Bucharest", time(9, 2), time(18), WEEKDAYS, None)
    assert next_dispatch_at(window, local(2026, 11, 25, 7, 0)) == local(2026, 11, 25, 9, 5)


def test_a_window_without_any_cron_tick_has_no_next_dispatch() -> None:
    between_ticks = SendingWindow("UTC", time(9, 1), time(9, 3), frozenset({1}), None)
    assert next_dispatch_at(between_ticks, local(2026, 11, 25, 10, 0)) is None


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (OFFICE, local(2026, 11, 25, 10, 0), local(2026, 11, 26, 9, 0)),
        (OFFICE, local(2026, 11, 20, 10, 0), local(2026, 11, 23, 9, 0)),
        (NIGHT, local(2026, 11, 27, 23, 0), local(2026, 11, 28, 0, 0)),  # fresh quota at midnight, still open
    ],
)
def test_quota_skips_move_to_the_first_open_instant_of_a_later_day(
    window: SendingWindow, now: datetime, expected: datetime
) -> None:
    assert window.next_quota_day_opening(now) == expected


def test_quota_date_is_the_tenant_local_date() -> None:
    late_utc = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 00:30 on the 26th in Bucharest
    assert quota_date(late_utc, "Europe/Bucharest") == date(2026, 11, 26)
    assert quota_date(late_utc, "America/New_York") == date(2026, 11, 25)


def test_cron_tick_grid() -> None:
    at = datetime(2026, 11, 25, 10, 7, 31, tzinfo=UTC)
    assert next_cron_tick(at) == datetime(2026, 11, 25, 10, 10, tzinfo=UTC)
    assert cron_tick_floor(at) == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    on_tick = datetime(2026, 11, 25, 10, 10, tzinfo=UTC)
    assert cron_tick_at_or_after(on_tick) == on_tick
    assert next_cron_tick(datetime(2026, 11, 25, 23, 58, tzinfo=UTC)) == datetime(
        2026, 11, 26, 0, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"days": frozenset({0, 8})}, "ISO weekdays"),
        ({"holiday_country": "XX"}, "unknown holiday country"),
        ({"holiday_country": ""}, "holiday_country is empty while skip_public_holidays is on"),
        ({"holiday_country": "  "}, "holiday_country is empty while skip_public_holidays is on"),
    ],
)
def test_bad_window_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "timezone": "Europe/Bucharest",
        "start": time(9),
        "end": time(18),
        "days": WEEKDAYS,
        "holiday_country": "RO",
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SendingWindow(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "end", "expected"),
    [
        ("09:00:00", False, time(9)),
        ("18:30:00", True, time(18, 30)),
        ("23:59:59.5", True, time(23, 59, 59, 500_000)),
        ("24:00:00", True, time(0)),  # the midnight that ends the day
    ],
)
def test_window_bounds_as_postgresql_writes_them(stored: str, end: bool, expected: time) -> None:
    assert window_bound(stored, "send_window_end" if end else "send_window_start", end=end) == expected


def test_a_window_ending_at_24_00_runs_to_midnight_and_one_starting_there_is_refused() -> None:
    evening = SendingWindow(
        "Europe/Bucharest", time(9), window_bound("24:00:00", "end", end=True), WEEKDAYS, None
    )
    assert evening.is_open(local(2026, 11, 25, 23, 59))
    assert not evening.is_open(local(2026, 11, 26, 0, 0))
    assert not evening.is_open(local(2026, 11, 28, 0, 30))  # Friday's window closed at Saturday's midnight
    whole_day = SendingWindow(
        "Europe/Bucharest", time(0), window_bound("24:00:00", "end", end=True), WEEKDAYS, None
    )
    assert whole_day.is_open(local(2026, 11, 25, 0, 0))
    assert whole_day.is_open(local(2026, 11, 25, 23, 59))
    with pytest.raises(ValueError, match="send_window_start is 24:00:00"):
        window_bound("24:00:00", "send_window_start", end=False)
