from __future__ import annotations

import asyncio
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


async def test_used_reads_each_phone_s_counter_of_that_day_and_zero_without_one(
    deps: Deps, redis: Redis
) -> None:
    # More phones than one MGET of the script takes (1000), in an order that is not the keys' own.
    phones = [uuid4() for _ in range(2500)]
    counted = {pid: n + 1 for n, pid in enumerate(phones) if n % 3 == 0}
    await redis.mset({quota_key(pid, DAY): count for pid, count in counted.items()})
    await redis.set(quota_key(phones[1], date(2026, 11, 24)), 7)  # another day counts for nothing here

    used = await deps.quota.used(phones, DAY)

    assert list(used) == phones
    assert used == {pid: counted.get(pid, 0) for pid in phones}
    assert await deps.quota.used([], DAY) == {}


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
