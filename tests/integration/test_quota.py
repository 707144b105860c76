from __future__ import annotations

import asyncio
import random
from datetime import date
from uuid import uuid4

from redis.asyncio import Redis

from src.names import quota_key, quota_reservations_key
from src.redis_io.quota_ledger import PhoneLimit, ReservationRequest
from src.runtime.deps import Deps

DAY = date(2026, 11, 25)
TENANT = uuid4()


async def test_reservation_stops_exactly_at_the_daily_limit(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 200)
    await redis.set(quota_key(phone.phone_id, DAY), 199)
    requests = [ReservationRequest(f"job-{n}", phone.phone_id, fall_through=False) for n in range(5)]

    reservations, counters = await deps.quota.reserve(
        tenant_id=TENANT, quota_date=DAY, phones=[phone], requests=requests
    )

    assert [r.phone_id for r in reservations] == [phone.phone_id, None, None, None, None]
    assert counters == {phone.phone_id: 200}
    assert int(await redis.get(quota_key(phone.phone_id, DAY))) == 200


async def test_a_job_id_is_counted_once_whatever_the_retries(deps: Deps, redis: Redis) -> None:
    a, b = PhoneLimit(uuid4(), 10), PhoneLimit(uuid4(), 10)
    first, _ = await deps.quota.reserve(
        tenant_id=TENANT,
        quota_date=DAY,
        phones=[a, b],
        requests=[ReservationRequest("job-1", a.phone_id, True)],
    )
    # A rerun that would now choose the other phone finds the first reservation and keeps it.
    again, counters = await deps.quota.reserve(
        tenant_id=TENANT,
        quota_date=DAY,
        phones=[a, b],
        requests=[ReservationRequest("job-1", b.phone_id, True)],
    )
    assert (first[0].phone_id, first[0].reused) == (a.phone_id, False)
    assert (again[0].phone_id, again[0].reused) == (a.phone_id, True)
    assert counters == {a.phone_id: 1, b.phone_id: 0}


async def test_a_new_lead_falls_through_to_the_phone_with_most_room(deps: Deps, redis: Redis) -> None:
    full, roomy, tight = PhoneLimit(uuid4(), 5), PhoneLimit(uuid4(), 50), PhoneLimit(uuid4(), 50)
    await redis.set(quota_key(full.phone_id, DAY), 5)
    await redis.set(quota_key(tight.phone_id, DAY), 45)
    requests = [
        ReservationRequest("new-lead", full.phone_id, fall_through=True),
        ReservationRequest("sticky-lead", full.phone_id, fall_through=False),
    ]

    reservations, _ = await deps.quota.reserve(
        tenant_id=TENANT, quota_date=DAY, phones=[full, roomy, tight], requests=requests
    )

    assert [r.phone_id for r in reservations] == [roomy.phone_id, None]


async def test_keys_expire_after_at_least_48_hours(deps: Deps, redis: Redis) -> None:
    phone = PhoneLimit(uuid4(), 10)
    await deps.quota.reserve(
        tenant_id=TENANT,
        quota_date=DAY,
        phones=[phone],
        requests=[ReservationRequest("j", phone.phone_id, False)],
    )
    assert await redis.ttl(quota_key(phone.phone_id, DAY)) >= 48 * 3600
    assert await redis.ttl(quota_reservations_key(TENANT, DAY)) >= 48 * 3600


async def test_concurrent_reservations_never_pass_the_limit(deps: Deps, redis: Redis) -> None:
    phones = [PhoneLimit(uuid4(), 30) for _ in range(3)]

    async def batch(n: int) -> None:
        requests = [
            ReservationRequest(f"b{n}-{i}", phones[i % 3].phone_id, fall_through=True) for i in range(10)
        ]
        await deps.quota.reserve(tenant_id=TENANT, quota_date=DAY, phones=phones, requests=requests)

    await asyncio.gather(*(batch(n) for n in range(40)))

    used = await deps.quota.used([p.phone_id for p in phones], DAY)
    assert used == {p.phone_id: 30 for p in phones}
    assert await redis.hlen(quota_reservations_key(TENANT, DAY)) == 90


async def redis_state(redis: Redis) -> dict[bytes, object]:
    """Every key with its value (a queue with its scores) and whether it expires."""
    state: dict[bytes, object] = {}
    for key in sorted(await redis.keys("*")):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: object = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        else:
            value = await redis.zrange(key, 0, -1, withscores=True)
        state[key] = (kind, value, await redis.ttl(key) > 0)
    return state


async def test_reserve_and_enqueue_does_what_reserve_then_enqueue_does(deps: Deps, redis: Redis) -> None:
    """The route job's one-round-trip script against the two steps it stands for, on the same sequence
    of requests: same reservations, same jobs written, same keys left in Redis."""
    from src.redis_io.job_writer import OutgoingJob

    phones = [PhoneLimit(uuid4(), 3), PhoneLimit(uuid4(), 2), PhoneLimit(uuid4(), 4)]
    in_use = phones[:2]  # the third is no longer available: reservations on it do not count
    available = ",".join(str(p.phone_id) for p in in_use)
    rng = random.Random(5)
    steps = [(f"job-{rng.randrange(8)}", rng.choice(in_use)) for _ in range(40)]
    # Earlier tries: job-0 reserved the phone no longer available, job-1 the first phone.
    seeded = [("job-0", phones[2]), ("job-1", phones[0])]

    async def seed() -> None:
        await redis.flushdb()
        await deps.quota.reserve(
            tenant_id=TENANT,
            quota_date=DAY,
            phones=phones,
            requests=[ReservationRequest(job, phone.phone_id, False) for job, phone in seeded],
        )

    def job(job_id: str, phone: PhoneLimit) -> OutgoingJob:
        return OutgoingJob(job_id, f"q:wa:{phone.phone_id}", "send", {"phone": str(phone.phone_id)})

    await seed()
    one_script = []
    for job_id, phone in steps:
        reservation, written = await deps.quota.reserve_and_enqueue(
            tenant_id=TENANT,
            quota_date=DAY,
            phone=phone,
            available=available,
            job=job(job_id, phone),
            now_ms=1_000,
        )
        one_script.append((reservation, written))
    after_one_script = await redis_state(redis)

    await seed()
    two_steps = []
    for job_id, phone in steps:
        (reservation,), _ = await deps.quota.reserve(
            tenant_id=TENANT,
            quota_date=DAY,
            phones=in_use,
            requests=[ReservationRequest(job_id, phone.phone_id, fall_through=False)],
        )
        written = None
        if reservation.phone_id == phone.phone_id:
            (written,) = await deps.job_writer.enqueue([job(job_id, phone)], now_ms=1_000)
        two_steps.append((reservation, written))
    after_two_steps = await redis_state(redis)

    assert one_script == two_steps
    assert after_one_script == after_two_steps
    # Every branch of the script was taken: written, already queued, reserved earlier on the other
    # phone, no room left.
    outcomes = {
        (r.phone_id is None, r.reused, w, r.phone_id in (None, phone.phone_id))
        for (r, w), (_, phone) in zip(one_script, steps, strict=True)
    }
    assert {
        (False, False, True, True),
        (False, True, False, True),
        (False, True, None, False),
        (True, False, None, True),
    } <= outcomes
