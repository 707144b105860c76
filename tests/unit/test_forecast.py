"""The pure capacity forecast (src/domain/forecast.py): each safeguard caps the day it should."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from src.contracts import Channel
from src.domain.forecast import ForecastInput, SenderPhone, forecast
from src.domain.senders import Pace
from src.domain.windows import SendingWindow
from tests.support.domain import CONTACT, TENANT, lead, phone

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
WINDOW = SendingWindow("Europe/Bucharest", time(9), time(18), WEEKDAYS, "RO")
NO_PACING = Pace(0, 0)
WHATSAPP_ONLY = replace(CONTACT, email_status="invalid")
EMAIL_ONLY = replace(CONTACT, hlr_reachable=False)
THU = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # Thursday 07:00 in Bucharest, before the window


def sender(limit: int = 200, used: int = 0, **warmup: object) -> SenderPhone:
    values: dict[str, object] = {
        "warmup_started_on": None,
        "warmup_initial_limit": 20,
        "warmup_daily_increase": 10,
    }
    values.update(warmup)
    return SenderPhone(phone(used=used, limit=limit), **values)  # type: ignore[arg-type]


def data(leads: int, *phones: SenderPhone, **changes: object) -> ForecastInput:
    values: dict[str, object] = {
        "tenant_id": TENANT,
        "window": WINDOW,
        "pace": NO_PACING,
        "portfolio_limit": None,
        "portfolio_scores": [],
        "phones": list(phones),
        "backlog": [lead(contact=WHATSAPP_ONLY) for _ in range(leads)],
    }
    values.update(changes)
    return ForecastInput(**values)  # type: ignore[arg-type]


def whatsapp_per_day(result: object) -> list[int]:
    return [day.dispatched[Channel.WHATSAPP] for day in result.days]  # type: ignore[attr-defined]


def test_a_public_holiday_is_closed_with_its_name_and_sends_nothing() -> None:
    result = forecast(data(500, sender(limit=100)), now=THU, days=6)

    days = {day.day: day for day in result.days}
    holiday = days[date(2026, 12, 1)]
    assert holiday.closed == "public holiday: National Day"
    assert holiday.total == 0
    assert holiday.whatsapp_capacity == 0
    assert days[date(2026, 11, 28)].closed == "Saturday is not a send day"
    assert days[date(2026, 11, 30)].closed == "public holiday: Saint Andrew's Day"
    # Thu, Fri, then the Wednesday after two holidays and a weekend.
    assert whatsapp_per_day(result) == [100, 100, 0, 0, 0, 0]
    assert result.days[-1].backlog_left == 300


def test_the_dst_day_has_an_hour_more_of_pacing_slots() -> None:
    # 00:00-06:00 local: on 25 October 2026 the clocks go back at 04:00, so that window lasts 7 hours.
    night = SendingWindow("Europe/Bucharest", time(0), time(6), frozenset(range(1, 8)), None)
    every_minute = Pace(60, 0)
    midnight = datetime(2026, 10, 23, 21, 0, tzinfo=UTC)  # 24 October, 00:00 local (EEST)
    result = forecast(data(5000, sender(limit=1000), window=night, pace=every_minute), now=midnight, days=3)

    assert [day.day for day in result.days] == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
    assert whatsapp_per_day(result) == [360, 420, 360]


def test_warm_up_ramps_the_limit_day_by_day_until_the_backlog_clears() -> None:
    new_number = sender(limit=200, warmup_started_on=date(2026, 11, 26))
    result = forecast(data(120, new_number), now=THU, days=10)

    # Thu day 1: 20, Fri day 2: 30; the weekend and two holidays still count as warm-up days:
    # Wed 2 December is day 7: 80, which leaves nothing.
    assert whatsapp_per_day(result)[:2] == [20, 30]
    assert result.days[6].day == date(2026, 12, 2)
    assert result.days[6].whatsapp_capacity == 80
    assert result.days[6].dispatched[Channel.WHATSAPP] == 70
    assert result.clears_on == date(2026, 12, 2)


def test_the_portfolio_budget_caps_all_phones_together() -> None:
    _, closes = WINDOW.opening_of(date(2026, 11, 26))
    recent = [closes - timedelta(hours=23)] * 5 + [closes - timedelta(hours=25)] * 7  # 5 within 24 h
    result = forecast(
        data(100, sender(), sender(), sender(), portfolio_limit=30, portfolio_scores=recent), now=THU, days=2
    )

    assert [day.whatsapp_capacity for day in result.days] == [25, 30]
    assert whatsapp_per_day(result) == [25, 30]
    assert result.days[-1].backlog_left == 45


def test_pacing_caps_each_phone_at_the_slots_of_its_window() -> None:
    # 9 hours at 10 minutes (+ 0..120 s, counted at its mean of 60 s) = 49.09 slots: 50 from the opening.
    result = forecast(data(500, sender(), sender(), pace=Pace(600, 120)), now=THU, days=1)

    assert result.days[0].whatsapp_capacity == 100
    assert whatsapp_per_day(result) == [100]


def test_today_counts_what_is_reserved_and_the_next_free_slot() -> None:
    ten_past_four = datetime(2026, 11, 26, 14, 10, tzinfo=UTC)  # 16:10 local: 110 minutes left
    busy = replace(sender(limit=100, used=40), next_free=datetime(2026, 11, 26, 15, 0, tzinfo=UTC))
    result = forecast(
        data(500, busy, sender(limit=100, used=95), pace=Pace(60, 0)), now=ten_past_four, days=2
    )

    # The busy phone: 60 left, but only 60 minutes from its next free slot at 17:00 to the close.
    assert result.days[0].whatsapp_capacity == 60 + 5
    assert result.days[1].whatsapp_capacity == 200


def test_each_channel_is_forecast_and_leads_without_one_leave_the_backlog() -> None:
    nobody = replace(CONTACT, whatsapp_opted_out=True, email_opted_out=True)
    backlog = (
        [lead(contact=WHATSAPP_ONLY)] * 30
        + [lead(contact=EMAIL_ONLY)] * 20
        + [lead(contact=replace(EMAIL_ONLY, stage="CONTACTED_WA"))] * 5
        + [lead(contact=nobody)] * 4
    )
    result = forecast(data(0, sender(limit=10), backlog=backlog), now=THU, days=3)

    first = result.days[0]
    assert dict(first.dispatched) == {Channel.WHATSAPP: 10, Channel.EMAIL_COLD: 20, Channel.EMAIL_WARM: 5}
    assert first.backlog_left == 20
    assert result.no_channel == 4
    assert result.clears_on is None  # Fri 10, then the weekend and two holidays
    assert result.days[1].backlog_left == 10


def test_a_conversation_waits_for_its_own_phone_as_in_dispatch() -> None:
    busy, idle = sender(limit=10), sender(limit=10)
    sticky = [lead(contact=WHATSAPP_ONLY, sticky_phone_id=busy.state.id) for _ in range(15)]
    result = forecast(data(0, busy, idle, backlog=sticky), now=THU, days=2)

    # The idle phone's room is no use to another phone's conversations: 10 a day, not 20.
    assert whatsapp_per_day(result) == [10, 5]
    assert result.days[0].whatsapp_capacity == 20


def test_the_window_that_has_closed_today_sends_nothing_more() -> None:
    evening = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # 19:00 local
    result = forecast(data(10, sender()), now=evening, days=2)

    assert result.days[0].closed == "the window has closed for today"
    assert whatsapp_per_day(result) == [0, 10]
    assert result.clears_on == date(2026, 11, 27)


def test_a_suspended_tenant_sends_nothing() -> None:
    result = forecast(data(10, sender(), suspended=True), now=THU, days=2)

    assert [day.closed for day in result.days] == [
        "the tenant is SUSPENDED: the cron dispatches none of its leads"
    ] * 2
    assert whatsapp_per_day(result) == [0, 0]
    assert result.clears_on is None


@pytest.mark.parametrize("days", [0, 91])
def test_days_out_of_range_are_refused(days: int) -> None:
    with pytest.raises(ValueError, match=r"days must be 1\.\.90"):
        forecast(data(1, sender()), now=THU, days=days)
