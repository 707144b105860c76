"""The pure sender-safety rules: warm-up limit, pacing gaps and slots, forecast capacity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from src.domain.senders import Pace, effective_daily_limit, next_slot, pacing_capacity, warmup_day

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
