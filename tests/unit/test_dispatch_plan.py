from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from src.contracts import AllocationType, Channel, ChannelPreference
from src.domain.allocation import AllocationReason, BatchAllocator
from src.domain.dispatch import (
    Outcome,
    Reserved,
    job_id_for,
    next_actions,
    output_for,
    plan_batch,
    settle_reservations,
)
from src.domain.senders import Shortfall
from src.domain.windows import SendingWindow
from tests.support.domain import CONTACT, TENANT, lead, phone

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wednesday 10:00 in Bucharest
WINDOW = SendingWindow("Europe/Bucharest", time(9), time(18), frozenset({1, 2, 3, 4, 5}), "RO")


def test_plan_covers_every_outcome() -> None:
    live, banned = phone(used=198), phone(status="BANNED")
    on_banned = lead(sticky_phone_id=banned.id)
    email_only = lead(contact=replace(CONTACT, hlr_reachable=False))
    nobody = lead(contact=replace(CONTACT, whatsapp_opted_out=True, email_opted_out=True))
    late = lead()
    batch = [lead(), on_banned, email_only, nobody, late]

    decisions = plan_batch(
        batch,
        preference=ChannelPreference.AUTO,
        allocator=BatchAllocator(TENANT, [live, banned]),
        allowed_bases=frozenset(),
        suppressed={},
    )

    summary = [(d.outcome, d.channel, d.reason, d.phone_id) for d in decisions]
    assert summary == [
        (Outcome.DISPATCHED, Channel.WHATSAPP, AllocationReason.NEW_PHONE, live.id),
        (Outcome.DISPATCHED, Channel.WHATSAPP, AllocationReason.FALLBACK_STICKY_UNAVAILABLE, live.id),
        (Outcome.DISPATCHED, Channel.EMAIL_COLD, "BEST_SCORE", None),
        (Outcome.SKIPPED_NO_CHANNEL, None, "OPTED_OUT", None),
        (Outcome.SKIPPED_QUOTA, Channel.WHATSAPP, AllocationReason.NO_PHONE_WITH_QUOTA, None),
    ]
    assert decisions[0].recipient == "+40721000001"
    assert decisions[2].recipient == "a@b.ro"


def test_settling_applies_what_redis_reserved() -> None:
    a, b = phone(), phone()
    sticky_lead, new_lead, other = lead(sticky_phone_id=a.id), lead(), lead()
    decisions = plan_batch(
        [sticky_lead, new_lead, other],
        preference=ChannelPreference.AUTO,
        allocator=BatchAllocator(TENANT, [a, b]),
        allowed_bases=frozenset(),
        suppressed={},
    )

    settled = settle_reservations(
        decisions,
        {
            sticky_lead.journey_id: Reserved(None, shortfall=Shortfall.QUOTA),
            new_lead.journey_id: Reserved(a.id),
            other.journey_id: Reserved(decisions[2].phone_id),
        },
    )

    assert (settled[0].outcome, settled[0].reason) == (
        Outcome.SKIPPED_QUOTA,
        AllocationReason.STICKY_QUOTA_EXHAUSTED,
    )
    assert (settled[1].phone_id, settled[1].allocation) == (a.id, AllocationType.NEW)
    assert settled[2] == decisions[2]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.DISPATCHED, NOW + timedelta(days=1)),
        (Outcome.SKIPPED_QUOTA, datetime(2026, 11, 26, 7, 0, tzinfo=UTC)),
        (Outcome.SKIPPED_NO_CHANNEL, NOW + timedelta(hours=6)),
    ],
)
def test_every_decided_lead_leaves_the_due_set(outcome: Outcome, expected: datetime) -> None:
    after = next_actions(
        now=NOW, window=WINDOW, redispatch_after=timedelta(days=1), no_channel_recheck=timedelta(hours=6)
    )
    assert after[outcome] == expected


ALL_DAY = SendingWindow("Europe/Bucharest", time(0), time(0), frozenset(range(1, 8)), None)


@pytest.mark.parametrize(
    ("now", "redispatch_after", "expected"),
    [
        # 10:00 Wednesday: an hour later is the same day; the next day starts at midnight, 22:00 UTC.
        (NOW, timedelta(hours=1), datetime(2026, 11, 25, 22, 0, tzinfo=UTC)),
        (NOW, timedelta(days=1), NOW + timedelta(days=1)),
        (NOW, timedelta(days=3), NOW + timedelta(days=3)),
        # 00:30 on Sunday 25 October 2026, the 25-hour day: 24 h later it is 23:30 the same Sunday.
        (
            datetime(2026, 10, 24, 21, 30, tzinfo=UTC),
            timedelta(days=1),
            datetime(2026, 10, 25, 22, 0, tzinfo=UTC),  # Monday 00:00 EET
        ),
        # 23:30 on Saturday 28 March 2026, before the 23-hour day: 24 h later is already Monday 00:30.
        (
            datetime(2026, 3, 28, 21, 30, tzinfo=UTC),
            timedelta(days=1),
            datetime(2026, 3, 29, 21, 30, tzinfo=UTC),
        ),
    ],
)
def test_a_dispatched_lead_is_not_due_again_before_the_next_local_day(
    now: datetime, redispatch_after: timedelta, expected: datetime
) -> None:
    after = next_actions(
        now=now, window=ALL_DAY, redispatch_after=redispatch_after, no_channel_recheck=timedelta(hours=6)
    )
    assert after[Outcome.DISPATCHED] == expected
    assert ALL_DAY.local_date(after[Outcome.DISPATCHED]) > ALL_DAY.local_date(now)


def test_job_ids_are_deterministic_per_lead_step_and_day() -> None:
    one = lead(sequence_id="seq-1", sequence_step=3)
    [decision] = plan_batch(
        [one],
        preference=ChannelPreference.AUTO,
        allocator=BatchAllocator(TENANT, [phone()]),
        allowed_bases=frozenset(),
        suppressed={},
    )
    assert job_id_for(decision, TENANT, date(2026, 11, 25)) == f"wa:{TENANT}:{one.lead_id}:seq-1:3:2026-11-25"
    assert job_id_for(decision, TENANT, date(2026, 11, 26)) != job_id_for(
        decision, TENANT, date(2026, 11, 25)
    )


def test_output_queue_comes_from_the_queue_slot() -> None:
    slotted = phone()
    [decision] = plan_batch(
        [lead()],
        preference=ChannelPreference.AUTO,
        allocator=BatchAllocator(TENANT, [slotted]),
        allowed_bases=frozenset(),
        suppressed={},
    )
    queue, function, payload = output_for(
        decision, tenant_id=TENANT, correlation_id="c", dispatch_job_id="d", queue_slots={slotted.id: "0042"}
    )
    assert (queue, function) == ("q:wa:phone_0042", "send-whatsapp-initial")
    assert payload["personalization"] == {
        "companyName": "Agroferma Someșul SRL",
        "contactName": "Ana Pop",
        "judet": "Cluj",
        "localitate": "Dej",
    }
