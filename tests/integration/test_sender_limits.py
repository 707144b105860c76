"""The reservation script's sender limits (src/redis_io/quota_ledger.py), on real Redis: pacing slots,
the portfolio budget, and a job id that keeps its phone and slot whatever the retries."""

from __future__ import annotations

from datetime import date
from uuid import UUID, uuid4

from redis.asyncio import Redis

from src.domain.senders import Shortfall
from src.names import pace_key, pace_slots_key, portfolio_key, quota_key
from src.redis_io.quota_ledger import Frame, PhoneLimit, Reservation, ReservationRequest
from src.runtime.deps import Deps

DAY = date(2026, 11, 25)
TENANT = uuid4()
NOW = 1_795_000_000_000  # ms on the service's clock
MINUTE = 60_000
DAY_MS = 24 * 60 * MINUTE
OPEN = Frame(NOW, NOW, NOW + 9 * 60 * MINUTE)


def request(
    job: str, phone: UUID, *, recipient: str | None = None, gap_ms: int = MINUTE, **more: bool
) -> ReservationRequest:
    return ReservationRequest(job, phone, False, recipient, gap_ms, **more)


async def reserve(
    deps: Deps, phones: list[PhoneLimit], requests: list[ReservationRequest], frame: Frame
) -> list[Reservation]:
    reservations, _ = await deps.quota.reserve(
        tenant_id=TENANT, quota_date=DAY, phones=phones, requests=requests, frame=frame
    )
    return reservations


async def test_slots_are_a_gap_apart_and_stop_at_the_window_close(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 100)
    frame = Frame(NOW, NOW - MINUTE, NOW + 5 * MINUTE)  # open, closing in 5 minutes
    gaps = [90_000, 60_000, 150_000, 60_000]

    got = await reserve(
        deps, [phone], [request(f"j{n}", phone.phone_id, gap_ms=g) for n, g in enumerate(gaps)], frame
    )

    assert [r.slot_ms for r in got] == [NOW, NOW + 90_000, NOW + 150_000, None]
    assert got[3].shortfall is Shortfall.WINDOW_FULL
    assert int(await redis.get(quota_key(phone.phone_id, DAY))) == 3  # the refused one took no quota
    assert int(await redis.get(pace_key(phone.phone_id, DAY))) == NOW + 300_000


async def test_a_slot_waits_for_the_window_opening_and_for_the_phones_next_free_instant(deps: Deps) -> None:
    phone = PhoneLimit(uuid4(), 100)
    later = Frame(NOW, NOW + 30 * MINUTE, NOW + 60 * MINUTE)  # a route job while the window is closed

    [first] = await reserve(deps, [phone], [request("a", phone.phone_id)], later)
    [second] = await reserve(deps, [phone], [request("b", phone.phone_id)], OPEN)

    assert first.slot_ms == NOW + 30 * MINUTE
    assert second.slot_ms == NOW + 31 * MINUTE


async def test_quota_is_reported_before_the_window(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 1)
    closed = Frame(NOW, NOW - 2 * MINUTE, NOW - MINUTE)
    await redis.set(quota_key(phone.phone_id, DAY), 1)

    [got] = await reserve(deps, [phone], [request("a", phone.phone_id)], closed)

    assert (got.phone_id, got.shortfall) == (None, Shortfall.QUOTA)


async def test_a_reserved_job_id_gets_back_its_phone_and_slot_and_counts_once(
    deps: Deps, redis: Redis
) -> None:
    a, b = PhoneLimit(uuid4(), 10), PhoneLimit(uuid4(), 10)
    budget = Frame(NOW, NOW, NOW + DAY_MS - 1, portfolio_limit=5)
    job = ReservationRequest("job-1", a.phone_id, True, "+40722000001", MINUTE)
    first, _ = await reserve(deps, [a, b], [job, request("job-2", a.phone_id)], budget)
    before = {key: await redis.get(key) for key in (quota_key(a.phone_id, DAY), pace_key(a.phone_id, DAY))}

    # A re-run an hour later, that would now choose the other phone: the same phone and the same slot.
    rerun = ReservationRequest("job-1", b.phone_id, True, "+40722000001", 5 * MINUTE)
    [again] = await reserve(deps, [a, b], [rerun], Frame(NOW + 60 * MINUTE, NOW, NOW + DAY_MS - 1, 5))

    assert (first.phone_id, first.slot_ms, first.reused) == (a.phone_id, NOW, False)
    assert (again.phone_id, again.slot_ms, again.reused) == (a.phone_id, NOW, True)
    assert {key: await redis.get(key) for key in before} == before  # quota and pace counted once
    assert await redis.zcard(portfolio_key(TENANT)) == 1
    assert int(await redis.hget(pace_slots_key(TENANT, DAY), "job-1")) == NOW


async def test_a_recipient_messaged_within_24_hours_does_not_count_again(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 100)
    budget = Frame(NOW, NOW, NOW + 9 * 60 * MINUTE, portfolio_limit=2)
    requests = [
        request("x1", phone.phone_id, recipient="+40722000001"),
        request("x2", phone.phone_id, recipient="+40722000001"),  # the same recipient: free
        request("y", phone.phone_id, recipient="+40722000002"),
        request("z", phone.phone_id, recipient="+40722000003"),  # a third: over the budget
    ]

    got = await reserve(deps, [phone], requests, budget)

    assert [r.shortfall for r in got] == [None, None, None, Shortfall.PORTFOLIO_LIMIT]
    assert got[3].phone_id is None
    assert int(await redis.get(quota_key(phone.phone_id, DAY))) == 3
    assert await redis.zcard(portfolio_key(TENANT)) == 2


async def test_the_budget_moves_with_24_hours_and_its_key_outlives_the_newest_score(
    deps: Deps, redis: Redis
) -> None:
    phone = PhoneLimit(uuid4(), 100)
    first = Frame(NOW, NOW, NOW + DAY_MS - 1, portfolio_limit=1)
    [early] = await reserve(deps, [phone], [request("a", phone.phone_id, recipient="+40722000001")], first)
    full = await reserve(deps, [phone], [request("b", phone.phone_id, recipient="+40722000002")], first)
    assert await redis.pttl(portfolio_key(TENANT)) >= DAY_MS - MINUTE

    # 24 h after the first message's slot, its recipient no longer counts: the budget has room again.
    day_after = Frame(NOW + DAY_MS + 1, NOW + DAY_MS + 1, NOW + 2 * DAY_MS, portfolio_limit=1)
    [late] = await reserve(deps, [phone], [request("c", phone.phone_id, recipient="+40722000002")], day_after)

    assert early.slot_ms == NOW
    assert full[0].shortfall is Shortfall.PORTFOLIO_LIMIT
    assert late.slot_ms == NOW + DAY_MS + 1
    assert await redis.zrange(portfolio_key(TENANT), 0, -1) == [b"+40722000002"]


async def test_send_now_takes_now_and_later_paced_messages_keep_the_gap(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 100)
    closed = Frame(NOW, NOW + 60 * MINUTE, NOW + 120 * MINUTE)

    [reply] = await reserve(
        deps, [phone], [request("reply", phone.phone_id, gap_ms=2 * MINUTE, send_now=True)], closed
    )
    [paced] = await reserve(deps, [phone], [request("paced", phone.phone_id)], OPEN)

    assert reply.slot_ms == NOW  # outside the window: a reply goes at once
    assert paced.slot_ms == NOW + 2 * MINUTE
    assert int(await redis.get(quota_key(phone.phone_id, DAY))) == 2


async def test_pacing_keys_expire_like_the_quota_keys(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 10)
    await reserve(deps, [phone], [request("j", phone.phone_id)], OPEN)
    assert await redis.ttl(pace_key(phone.phone_id, DAY)) >= 48 * 3600
    assert await redis.ttl(pace_slots_key(TENANT, DAY)) >= 48 * 3600
