from __future__ import annotations

import random
from collections import Counter
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.contracts import AllocationType
from src.domain.allocation import (
    Allocation,
    AllocationReason,
    BatchAllocator,
    PhoneState,
    allocate,
    deciding_counters,
    is_available,
)
from tests.support.domain import TENANT, phone

OTHER_TENANT = uuid4()


def allocate_once(
    phones: list[PhoneState], sticky: PhoneState | None = None, *, prefer: bool = True
) -> Allocation:
    """One allocation for TENANT's lead, whose sticky phone is `sticky`, with a fixed draw."""
    return allocate(
        tenant_id=TENANT,
        sticky_phone_id=sticky.id if sticky else None,
        phones=phones,
        prefer_existing=prefer,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("changes", "available"),
    [
        ({}, True),
        ({"status": "PAUSED"}, False),
        ({"status": "BANNED"}, False),
        ({"is_enabled": False}, False),
        ({"tenant_id": OTHER_TENANT}, False),
        ({"used_today": 200}, True),  # available, just out of quota today
    ],
)
def test_available_phone(changes: dict[str, object], available: bool) -> None:
    assert is_available(phone(**changes), TENANT) is available


def test_remaining_never_negative() -> None:
    assert phone(used=250, limit=200).remaining == 0
    assert phone(used=199, limit=200).remaining == 1


def test_sticky_phone_is_kept_even_without_quota() -> None:
    sticky = phone(used=200)
    result = allocate_once([sticky, phone()], sticky)
    assert (result.phone_id, result.kind, result.reason) == (
        sticky.id,
        AllocationType.STICKY,
        AllocationReason.STICKY_QUOTA_EXHAUSTED,
    )


@pytest.mark.parametrize("dead", [{"status": "BANNED"}, {"status": "PAUSED"}, {"is_enabled": False}])
def test_unavailable_sticky_phone_gets_a_fallback(dead: dict[str, object]) -> None:
    sticky, healthy = phone(**dead), phone()
    result = allocate_once([sticky, healthy], sticky)
    assert (result.phone_id, result.kind) == (healthy.id, AllocationType.FALLBACK)


def test_sticky_phone_of_another_tenant_is_not_used() -> None:
    foreign, own = phone(tenant_id=OTHER_TENANT), phone()
    result = allocate_once([foreign, own], foreign)
    assert (result.phone_id, result.kind) == (own.id, AllocationType.FALLBACK)


def test_no_phone_with_quota_allocates_nothing() -> None:
    result = allocate_once([phone(used=200), phone(status="BANNED")])
    assert (result.phone_id, result.kind, result.reason) == (None, None, AllocationReason.NO_PHONE_WITH_QUOTA)


def test_new_leads_spread_in_proportion_to_remaining_quota() -> None:
    big, small, full = phone(used=0, limit=300), phone(used=0, limit=100), phone(used=200)
    rng = random.Random(7)
    counts = Counter(
        allocate(
            tenant_id=TENANT, sticky_phone_id=None, phones=[big, small, full], prefer_existing=True, rng=rng
        ).phone_id
        for _ in range(4000)
    )
    assert counts[full.id] == 0
    assert 2700 <= counts[big.id] <= 3300  # expected 3000 (300 of 400 remaining)
    assert 700 <= counts[small.id] <= 1300


class RecordingRandom(random.Random):
    """A seeded generator that also keeps the population and weights of every draw."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[dict[object, float]] = []

    def choices(self, population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1) -> Any:
        self.draws.append(dict(zip([p.id for p in population], weights, strict=True)))
        return super().choices(population, weights, cum_weights=cum_weights, k=k)


def test_the_draw_s_weights_are_the_phones_remaining_quota() -> None:
    nearly_full, half, fresh = phone(used=199), phone(used=100), phone(used=0, limit=500)
    others = [phone(used=200), phone(status="BANNED"), phone(tenant_id=OTHER_TENANT)]
    rng = RecordingRandom(1)

    allocate(
        tenant_id=TENANT,
        sticky_phone_id=None,
        phones=[nearly_full, half, fresh, *others],
        prefer_existing=True,
        rng=rng,
    )

    assert rng.draws == [{nearly_full.id: 1, half.id: 100, fresh.id: 500}]


def test_a_nearly_full_phone_is_drawn_as_seldom_as_its_room_says() -> None:
    nearly_full, roomy = phone(used=199), phone(used=101)  # 1 and 99 left: 1 draw in 100
    rng = random.Random(11)
    counts = Counter(
        allocate(
            tenant_id=TENANT, sticky_phone_id=None, phones=[nearly_full, roomy], prefer_existing=True, rng=rng
        ).phone_id
        for _ in range(20_000)
    )
    assert 140 <= counts[nearly_full.id] <= 260  # expected 200 (sd 14); weights one higher would give 392


def test_prefer_existing_false_draws_a_new_phone() -> None:
    sticky = phone()
    result = allocate_once([sticky], sticky, prefer=False)
    assert (result.phone_id, result.kind) == (sticky.id, AllocationType.NEW)


def test_batch_allocator_balances_by_most_remaining() -> None:
    a, b = phone(used=0, limit=10), phone(used=4, limit=10)
    allocator = BatchAllocator(TENANT, [a, b])
    picks = [allocator.take(None).phone_id for _ in range(16)]
    assert Counter(picks) == {a.id: 10, b.id: 6}
    assert allocator.take(None).reason is AllocationReason.NO_PHONE_WITH_QUOTA


def test_batch_allocator_keeps_a_conversation_on_its_exhausted_phone() -> None:
    sticky, other = phone(used=199), phone()
    allocator = BatchAllocator(TENANT, [sticky, other])
    assert allocator.take(sticky.id).reason is AllocationReason.STICKY
    waiting = allocator.take(sticky.id)
    assert (waiting.phone_id, waiting.reason) == (sticky.id, AllocationReason.STICKY_QUOTA_EXHAUSTED)


def test_batch_allocator_falls_back_from_a_banned_sticky_phone() -> None:
    banned, healthy = phone(status="BANNED"), phone()
    allocator = BatchAllocator(TENANT, [banned, healthy])
    result = allocator.take(banned.id)
    assert (result.phone_id, result.kind) == (healthy.id, AllocationType.FALLBACK)
    assert allocator.has_available_phone
    assert not BatchAllocator(TENANT, [banned]).has_available_phone


def test_a_phone_reserved_by_an_earlier_try_is_kept_without_spending_room() -> None:
    full = phone(used=10, limit=10)
    allocator = BatchAllocator(TENANT, [full])
    kept = allocator.take(None, already_reserved=full.id)
    assert (kept.phone_id, kept.kind, kept.reason) == (
        full.id,
        AllocationType.NEW,
        AllocationReason.NEW_PHONE,
    )
    assert allocator.remaining(full.id) == 0
    assert allocator.take(None).reason is AllocationReason.NO_PHONE_WITH_QUOTA
    banned = phone(status="BANNED")
    assert (
        BatchAllocator(TENANT, [full, banned]).take(banned.id, already_reserved=full.id).kind
        is AllocationType.FALLBACK
    )
    # A reservation on a phone that is no longer available is not reused.
    assert (
        BatchAllocator(TENANT, [banned, phone()]).take(None, already_reserved=banned.id).phone_id != banned.id
    )


phone_states = st.builds(
    phone,
    used=st.integers(min_value=0, max_value=12),
    limit=st.integers(min_value=1, max_value=10),
    status=st.sampled_from(["ACTIVE", "PAUSED", "BANNED"]),
    is_enabled=st.booleans(),
    tenant_id=st.sampled_from([TENANT, TENANT, OTHER_TENANT]),
)


@given(
    phones=st.lists(phone_states, max_size=6),
    sticky=st.integers(min_value=-1, max_value=6),
    prefer_existing=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_the_counters_allocate_phone_reads_are_all_its_decision_depends_on(
    phones: list[PhoneState], sticky: int, prefer_existing: bool, seed: int
) -> None:
    # allocate_phone reads the quota counters of `deciding_counters` only; whatever the others hold, the
    # decision is the one it would make knowing every counter. (-1: no sticky phone; len: an unknown one.)
    sticky_id = None if sticky < 0 else (phones[sticky].id if sticky < len(phones) else uuid4())
    deciding = deciding_counters(
        tenant_id=TENANT, sticky_phone_id=sticky_id, phones=phones, prefer_existing=prefer_existing
    )
    unknown = {p.id for p in phones} - {p.id for p in deciding}
    # Not read, so as far as the job knows these counters could hold anything.
    guessed = [p._replace(used_today=99) if p.id in unknown else p for p in phones]

    def decide(among: list[PhoneState]) -> Allocation:
        return allocate(
            tenant_id=TENANT,
            sticky_phone_id=sticky_id,
            phones=among,
            prefer_existing=prefer_existing,
            rng=random.Random(seed),
        )

    assert decide(list(deciding)) == decide(phones) == decide(guessed)
