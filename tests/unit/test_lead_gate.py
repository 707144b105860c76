"""The per-lead refusals and the timing of a routed message (src/domain/lead_gate.py), as tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from src.domain.lawful import UNRESTRICTED
from src.domain.lead_gate import LeadStanding, Refusal, SendTime, is_open, send_time, whatsapp_refusal
from src.domain.windows import SendingWindow

BUCHAREST_OFFICE = SendingWindow(
    timezone="Europe/Bucharest",
    start=time(9),
    end=time(18),
    days=frozenset({1, 2, 3, 4, 5}),
    holiday_country="RO",
)


def standing(**changes: object) -> LeadStanding:
    values: dict[str, object] = {
        "tenant_status": "ACTIVE",
        "stage": "CONTACTED_WA",
        "requires_human_review": False,
        "whatsapp_opted_out": False,
        "lawful": UNRESTRICTED,
    }
    values.update(changes)
    return LeadStanding(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({}, None),
        ({"stage": "COLD"}, None),
        ({"stage": "CONTACTED_EMAIL"}, None),
        ({"stage": "WARM_REPLY"}, None),
        ({"stage": "NEGOTIATION"}, None),
        ({"stage": "CONVERTED"}, Refusal.TERMINAL_STAGE),
        ({"stage": "DEAD"}, Refusal.TERMINAL_STAGE),
        ({"stage": "PAUSED"}, Refusal.TERMINAL_STAGE),
        ({"requires_human_review": True}, Refusal.HELD_FOR_REVIEW),
        ({"whatsapp_opted_out": True}, Refusal.WHATSAPP_OPTED_OUT),
        ({"tenant_status": "SUSPENDED"}, Refusal.TENANT_SUSPENDED),
        # The weightiest reason wins: the tenant, then the stage, the review hold, the opt-out.
        (
            {"tenant_status": "SUSPENDED", "stage": "DEAD", "requires_human_review": True},
            Refusal.TENANT_SUSPENDED,
        ),
        ({"stage": "DEAD", "requires_human_review": True}, Refusal.TERMINAL_STAGE),
        ({"requires_human_review": True, "whatsapp_opted_out": True}, Refusal.HELD_FOR_REVIEW),
    ],
)
def test_whatsapp_refusal(changes: dict[str, object], refusal: Refusal | None) -> None:
    assert whatsapp_refusal(standing(**changes)) is refusal


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "send_now", "expected"),
    [
        # Wednesday 10:00 in Bucharest: open, at once.
        (utc(2026, 11, 25, 8), False, SendTime(utc(2026, 11, 25, 8), False, date(2026, 11, 25))),
        # Wednesday 19:00: the next morning, on the next day's quota.
        (utc(2026, 11, 25, 17), False, SendTime(utc(2026, 11, 26, 7), True, date(2026, 11, 26))),
        # Friday 20:00: Monday morning.
        (utc(2026, 11, 20, 18), False, SendTime(utc(2026, 11, 23, 7), True, date(2026, 11, 23))),
        # The Friday before St Andrew's and National Day (Monday 30 November, Tuesday 1 December): Wednesday.
        (utc(2026, 11, 27, 18), False, SendTime(utc(2026, 12, 2, 7), True, date(2026, 12, 2))),
        # 03:00 on Christmas, a Friday and a public holiday; then the weekend: Monday the 28th.
        (utc(2026, 12, 25, 1), False, SendTime(utc(2026, 12, 28, 7), True, date(2026, 12, 28))),
        # A reply sends now, on today's quota, whatever the window says.
        (utc(2026, 12, 25, 1), True, SendTime(utc(2026, 12, 25, 1), False, date(2026, 12, 25))),
        # 01:30 UTC is 03:30 in Bucharest: the local date, not the UTC one, counts.
        (utc(2026, 11, 24, 23, 30), True, SendTime(utc(2026, 11, 24, 23, 30), False, date(2026, 11, 25))),
    ],
)
def test_send_time(now: datetime, send_now: bool, expected: SendTime) -> None:
    assert send_time(BUCHAREST_OFFICE, now, send_now=send_now) == expected


def test_a_window_that_never_opens_has_no_send_time() -> None:
    no_send_days = SendingWindow(
        timezone="Europe/Bucharest", start=time(9), end=time(18), days=frozenset(), holiday_country=None
    )
    assert send_time(no_send_days, utc(2026, 11, 25, 8), send_now=False) is None
    assert send_time(no_send_days, utc(2026, 11, 25, 8), send_now=True) is not None


@pytest.mark.parametrize(
    "window",
    [
        BUCHAREST_OFFICE,
        SendingWindow("Europe/Bucharest", time(22), time(6), frozenset({1, 2, 3, 4, 5, 6, 7}), "RO"),
        SendingWindow("America/New_York", time(0), time(0), frozenset({2, 4, 6}), "US"),
        SendingWindow("Pacific/Auckland", time(2, 30), time(2, 15), frozenset({1, 7}), None),
    ],
    ids=["office", "overnight", "all-day", "wraps-near-dst"],
)
@pytest.mark.parametrize("start", [utc(2026, 3, 20), utc(2026, 9, 20), utc(2026, 10, 20), utc(2026, 12, 20)])
def test_the_memoised_open_check_agrees_with_the_window(window: SendingWindow, start: datetime) -> None:
    """Every 7 minutes over 16 days around the DST changes and the holidays of each zone."""
    for step in range(16 * 24 * 60 // 7):
        at = start + timedelta(minutes=7 * step)
        assert is_open(window, at) is window.is_open(at), at
