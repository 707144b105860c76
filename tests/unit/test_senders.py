"""The pure sender-safety rules: warm-up limit, pacing gaps and slots, forecast capacity."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import uuid4

import pytest

from src.domain.senders import (
    Pace,
    Shortfall,
    SlotRequest,
    effective_daily_limit,
    next_slot,
    pacing_capacity,
    plan_slots,
    slot_bounds,
    warmup_day,
)
from src.domain.windows import SendingWindow

START = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (START - timedelta(days=3), 20),  # before the start: the start day's limit
        (START, 20),
        (START + timedelta(days=2), 40),  # day 3
        (START + timedelta(days=17), 190),
        (START + timedelta(days=18), 200),  # reaches daily_limit
        (START + timedelta(days=400), 200),  # never above it
    ],
)
def test_effective_limit_ramps_linearly_up_to_the_daily_limit(day: date, expected: int) -> None:
    assert effective_daily_limit(200, START, 20, 10, day) == expected


def test_a_warmed_up_number_has_its_daily_limit() -> None:
    assert effective_daily_limit(200, None, 20, 10, START) == 200
    assert warmup_day(200, None, 20, 10, START) is None


def test_warmup_day_counts_from_one_and_ends_when_the_ramp_reaches_the_limit() -> None:
    assert warmup_day(200, START, 20, 10, START) == 1
    assert warmup_day(200, START, 20, 10, START + timedelta(days=2)) == 3
    assert warmup_day(200, START, 20, 10, START + timedelta(days=18)) is None


def test_a_limit_below_the_initial_one_wins() -> None:
    assert effective_daily_limit(5, START, 20, 10, START) == 5


def test_gap_is_min_gap_plus_a_jitter_within_bounds_and_the_same_for_the_same_job() -> None:
    pace = Pace(60, 60)
    gaps = [pace.gap_ms(f"job-{n}") for n in range(2000)]
    assert all(60_000 <= gap <= 120_000 for gap in gaps)
    assert min(gaps) < 63_000
    assert max(gaps) > 117_000
    assert 85_000 < sum(gaps) / len(gaps) < 95_000  # uniform: mean near 90 s
    assert pace.gap_ms("job-7") == Pace(60, 60).gap_ms("job-7")


def test_pacing_off_and_no_jitter() -> None:
    assert Pace(0, 0).off
    assert Pace(0, 0).gap_ms("x") == 0
    assert not Pace(30, 0).off
    assert Pace(30, 0).gap_ms("x") == 30_000


def test_negative_pace_is_refused_naming_the_fields() -> None:
    with pytest.raises(ValueError, match="wa_min_gap_s and wa_jitter_s"):
        Pace(-1, 0)


def test_next_slot_is_the_latest_of_now_opening_and_free_and_inside_the_window() -> None:
    assert next_slot(free_ms=0, now_ms=100, opens_ms=50, closes_ms=1000) == 100
    assert next_slot(free_ms=0, now_ms=10, opens_ms=50, closes_ms=1000) == 50
    assert next_slot(free_ms=700, now_ms=100, opens_ms=50, closes_ms=1000) == 700
    assert next_slot(free_ms=1000, now_ms=100, opens_ms=50, closes_ms=1000) is None


def test_pacing_capacity_counts_slots_at_the_mean_gap() -> None:
    start = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    assert pacing_capacity(start, start + timedelta(minutes=5), Pace(60, 0)) == 5
    assert pacing_capacity(start, start + timedelta(minutes=5, seconds=1), Pace(60, 0)) == 6
    assert pacing_capacity(start, start + timedelta(hours=9), Pace(60, 60)) == 360
    assert pacing_capacity(start, start, Pace(60, 60)) == 0
    assert pacing_capacity(start, start + timedelta(hours=1), Pace(0, 0)) is None


BUCHAREST_9_TO_18 = SendingWindow("Europe/Bucharest", time(9), time(18), frozenset(range(1, 8)), None)
NIGHT_SHIFT = SendingWindow("Europe/Bucharest", time(22), time(2), frozenset(range(1, 8)), None)


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        # 10:00 local: the day's opening, 09:00 to 18:00 local
        (
            BUCHAREST_9_TO_18,
            datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
            ((2026, 11, 25, 7), (2026, 11, 25, 16)),
        ),
        # 23:00 local in a 22:00-02:00 window: only until midnight, the end of the quota day
        (NIGHT_SHIFT, datetime(2026, 11, 25, 21, 0, tzinfo=UTC), ((2026, 11, 25, 20), (2026, 11, 25, 22))),
        # 01:00 local the next day: from midnight, the start of that quota day, to 02:00
        (NIGHT_SHIFT, datetime(2026, 11, 25, 23, 0, tzinfo=UTC), ((2026, 11, 25, 22), (2026, 11, 26, 0))),
        (BUCHAREST_9_TO_18, datetime(2026, 11, 25, 17, 0, tzinfo=UTC), None),  # 19:00: closed
    ],
)
def test_slot_bounds_are_the_open_window_within_the_quota_day(
    window: SendingWindow, at: datetime, expected: tuple[tuple[int, ...], tuple[int, ...]] | None
) -> None:
    bounds = slot_bounds(window, at)
    if expected is None:
        assert bounds is None
    else:
        assert bounds == tuple(datetime(*parts, tzinfo=UTC) for parts in expected)


def _slot_bounds_from_the_window(window: SendingWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """slot_bounds as the window itself computes each part, nothing memoised."""
    today = window.local_date(at)
    for day in (today - timedelta(days=1), today):
        if window.is_send_day(day):
            opens, closes = window.opening_of(day)
            if opens <= at < closes:
                return max(opens, window.day_start(today)), min(closes, window.next_day_start(at))
    return None


@pytest.mark.parametrize(
    "window",
    [
        SendingWindow("Europe/Bucharest", time(9), time(18), frozenset(range(1, 6)), "RO"),
        NIGHT_SHIFT,
        SendingWindow("Europe/Bucharest", time(0), time(0), frozenset(range(1, 8)), "RO"),
        SendingWindow("America/New_York", time(1, 30), time(1, 15), frozenset({1, 3, 7}), "US"),
    ],
    ids=["office", "overnight", "all-day", "wraps-near-dst"],
)
@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 3, 25, tzinfo=UTC),
        datetime(2026, 10, 21, tzinfo=UTC),
        datetime(2026, 12, 20, tzinfo=UTC),
    ],
)
def test_the_memoised_slot_bounds_agree_with_the_window(window: SendingWindow, start: datetime) -> None:
    """Every 7 minutes over 14 days around each zone's DST changes and the Romanian holidays (1 May is
    outside; Christmas and 1-2 January are in)."""
    for step in range(14 * 24 * 60 // 7):
        at = start + timedelta(minutes=7 * step)
        assert slot_bounds(window, at) == _slot_bounds_from_the_window(window, at), at


def test_plan_slots_mirrors_the_reservation() -> None:
    a, b = uuid4(), uuid4()
    jobs = [uuid4() for _ in range(5)]
    requests = [
        SlotRequest(jobs[0], a, 60_000, "+40722000001"),
        SlotRequest(jobs[1], a, 60_000, "+40722000001"),  # the same recipient: counted once
        SlotRequest(jobs[2], b, 60_000, "+40722000002"),
        SlotRequest(jobs[3], b, 60_000, "+40722000003"),  # over the budget of 2
        SlotRequest(jobs[4], a, 60_000, None),  # no slot left before 1_000_120_000
    ]

    planned = plan_slots(
        requests,
        free_ms={b: 1_000_030_000},
        bounds_ms=(1_000_000_000, 999_000_000, 1_000_120_000),
        budget_left=2,
        seen=frozenset(),
    )

    assert [planned[job] for job in jobs] == [
        1_000_000_000,
        1_000_060_000,
        1_000_030_000,
        Shortfall.PORTFOLIO_LIMIT,
        Shortfall.WINDOW_FULL,
    ]
