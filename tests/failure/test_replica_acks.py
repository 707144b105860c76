"""REDIS_MIN_REPLICA_ACKS: a write the service relies on is confirmed by a replica (WAIT) first, on a real
primary and replica (`redis-server --replicaof`). A replica that does not acknowledge in time (frozen with
SIGSTOP here: a replica that lags, a link that stalls) makes the write a transient fault, and the step
that relies on it does not happen: the journeys do not commit, the outbox row is not deleted, the router
job does not report its message. Once the replica answers, the retry goes through and reuses what the
first try wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis.exceptions
from arq.worker import Retry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX, quota_key, quota_reservations_key
from src.redis_io.quota_ledger import PhoneLimit, ReservationRequest
from src.redis_io.replicas import ReplicaAcks, ReplicaAckTimeout
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from src.runtime.faults import Dependency, transient_fault
from tests.support.factories import Factory, tenant_with_leads
from tests.support.invariants import ledger
from tests.support.jobs import deps_with, job_ctx, run_dispatch
from tests.support.sentinel import Replicated
from tests.support.tenants import ALWAYS_OPEN


@pytest.fixture
def replicated() -> Iterator[Replicated]:
    servers = Replicated(replicas=1)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
async def primary(replicated: Replicated, deps: Deps) -> str:
    """The primary's URL, once its replica has synced (and the test's tables are empty)."""
    await replicated.start()
    return replicated.url()


@pytest.fixture
async def replica(replicated: Replicated) -> AsyncIterator[Redis]:
    """A client of the replica: what a failover would promote."""
    client = Redis(host="127.0.0.1", port=replicated.replicas[0].port)
    try:
        yield client
    finally:
        await client.aclose()


def service(url: str, clock: FixedClock, acks: int, **settings: Any) -> AbstractAsyncContextManager[Deps]:
    """The jobs' resources on `url`, with REDIS_MIN_REPLICA_ACKS=`acks`."""
    return deps_with(clock, redis_url=url, redis_min_replica_acks=acks, **settings)


@pytest.fixture
async def acked(primary: str, clock: FixedClock) -> AsyncIterator[Deps]:
    """On the primary, with a replica's acknowledgement required."""
    async with service(primary, clock, 1) as built:
        yield built


@pytest.fixture
async def unacked(primary: str, clock: FixedClock) -> AsyncIterator[Deps]:
    """On the primary without: what the service did before REDIS_MIN_REPLICA_ACKS existed."""
    async with service(primary, clock, 0) as built:
        yield built


async def reserve_one(deps: Deps, tenant: UUID, phone: UUID, today: date, job_id: str = "wa:job-1") -> Any:
    [reservation], _ = await deps.quota.reserve(
        tenant_id=tenant,
        quota_date=today,
        phones=[PhoneLimit(phone, 10)],
        requests=[ReservationRequest(job_id, phone, fall_through=False)],
    )
    return reservation


async def test_a_reservation_returns_once_the_replica_holds_it(
    acked: Deps, replica: Redis, factory: Factory, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)

    reservation = await reserve_one(acked, tenant, phone, today)

    assert reservation.phone_id == phone
    # Read from the replica the moment the call returns: nothing left in flight.
    assert await replica.get(quota_key(phone, today)) == b"1"
    assert await replica.hget(quota_reservations_key(tenant, today), "wa:job-1") == str(phone).encode()


async def test_a_write_the_replica_does_not_acknowledge_is_a_transient_redis_fault(
    acked: Deps, unacked: Deps, replicated: Replicated, factory: Factory, today: date
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    replicated.replicas[0].freeze()
    try:
        assert (await reserve_one(unacked, tenant, phone, today, "wa:unacked")).phone_id == phone
        with pytest.raises(ReplicaAckTimeout) as reserving:
            await reserve_one(acked, tenant, phone, today)
        with pytest.raises(ReplicaAckTimeout):
            await acked.job_writer.enqueue_batch(b"[]", now_ms=0)
    finally:
        replicated.replicas[0].thaw()

    assert transient_fault(reserving.value) is Dependency.REDIS
    assert "0 of 1 replicas acknowledged" in str(reserving.value)


async def test_a_confirmation_covers_the_writes_of_other_connections(
    primary: str, unacked: Deps, replicated: Replicated, replica: Redis, factory: Factory, today: date
) -> None:
    """WAIT alone counts the writes of its own connection, none on a connection that has not written yet.
    A reservation that an earlier try made and this one reuses (it writes nothing), or an enqueue that a
    pooled client sent on another connection, must be confirmed all the same: the fence does it."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    elsewhere = Redis.from_url(primary)  # its first command will be the confirmation
    acks = ReplicaAcks(elsewhere, min_acks=1, timeout_s=0.3)
    try:
        replicated.replicas[0].freeze()
        try:
            await reserve_one(unacked, tenant, phone, today)  # the earlier try, never confirmed
            with pytest.raises(ReplicaAckTimeout):
                await acks.confirm()
        finally:
            replicated.replicas[0].thaw()
        await acks.confirm()
    finally:
        await elsewhere.aclose()
    assert await replica.get(quota_key(phone, today)) == b"1"


async def test_dispatch_commits_no_journey_before_the_replica_holds_its_reservations(
    acked: Deps, replicated: Replicated, replica: Redis, factory: Factory, engine: AsyncEngine, today: date
) -> None:
    tenant = await tenant_with_leads(factory, 5)
    replicated.replicas[0].freeze()
    try:
        with pytest.raises(Retry):
            await run_dispatch(acked, tenant, "dispatch-1", batchSize=5)
        marked = await factory.scalar(
            "SELECT count(*) FROM gold_lead_journey WHERE last_dispatched_at IS NOT NULL"
        )
        outbox = await factory.scalar("SELECT count(*) FROM dispatch_outbox")
    finally:
        replicated.replicas[0].thaw()
    assert (marked, outbox) == (0, 0)

    rerun = await run_dispatch(acked, tenant, "dispatch-1", batchSize=5, job_try=2)

    assert rerun["dispatchedToWhatsApp"] == 5
    book = await ledger(engine, replica, today)  # counted on the replica
    book.assert_each_lead_once(5)


async def test_dispatch_keeps_its_outbox_row_until_the_replica_holds_the_jobs(
    primary: str,
    clock: FixedClock,
    replicated: Replicated,
    replica: Redis,
    factory: Factory,
    engine: AsyncEngine,
    today: date,
) -> None:
    tenant = await tenant_with_leads(factory, 5)
    # A pause after the commit, so that the replica stops answering between the commit and the enqueue.
    async with service(primary, clock, 1, chaos_pause_at="after_commit", chaos_pause_s=1.0) as pausing:
        task = asyncio.create_task(run_dispatch(pausing, tenant, "dispatch-1", batchSize=5))
        while not await factory.scalar("SELECT count(*) FROM dispatch_outbox"):
            assert not task.done(), task
            await asyncio.sleep(0.02)
        replicated.replicas[0].freeze()
        try:
            with pytest.raises(Retry):
                await task
            outbox = await factory.scalar("SELECT coalesce(sum(job_count), 0) FROM dispatch_outbox")
        finally:
            replicated.replicas[0].thaw()
        assert outbox == 5  # committed, enqueued on the primary alone: the row stays for the rerun

        rerun = await run_dispatch(pausing, tenant, "dispatch-1", batchSize=5, job_try=2)

    assert rerun["relayedFromOutbox"] == 5
    book = await ledger(engine, replica, today)
    book.assert_each_lead_once(5)


async def test_route_queues_its_message_only_once_the_replica_holds_its_reservation(
    acked: Deps, replicated: Replicated, replica: Redis, factory: Factory, today: date
) -> None:
    """A sender takes a message as soon as it is queued: queued before its reservation reached a replica,
    it could be sent and its reservation then lost in a failover, and the phone pass its daily_limit."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant, assigned_phone_id=phone)
    payload = {"leadId": str(lead), "phoneId": str(phone), "messageType": "FOLLOWUP", "payload": {}}
    replicated.replicas[0].freeze()
    try:
        with pytest.raises(Retry):
            await route(job_ctx(acked, job_id="router-1"), payload)
        queued_on_primary = await acked.redis.exists(ARQ_JOB_PREFIX + "routed:router-1")
        reserved_on_primary = await acked.redis.get(quota_key(phone, today))
    finally:
        replicated.replicas[0].thaw()
    assert (queued_on_primary, reserved_on_primary) == (0, b"1")

    result = await route(job_ctx(acked, job_id="router-1", job_try=2), payload)

    assert result["routed"] is True
    assert await replica.exists(ARQ_JOB_PREFIX + "routed:router-1")


async def test_a_client_enqueue_returns_once_the_replica_holds_the_job(
    primary: str, replicated: Replicated, replica: Redis
) -> None:
    """An ops script's enqueue: reported as enqueued only once a failover could not lose it; while the
    replica does not acknowledge, the enqueue raises, and the same job id enqueued again confirms it."""
    payload = {"tenantId": str(uuid4()), "leadId": str(uuid4())}
    async with OutreachClient.connect(primary, min_replica_acks=1) as client:
        acked = await client.enqueue_raw("select_channel", payload, job_id="select_channel:acked")
        on_replica = await replica.exists(ARQ_JOB_PREFIX + "select_channel:acked")

        replicated.replicas[0].freeze()
        try:
            with pytest.raises(ReplicaAckTimeout):
                await client.enqueue_raw("select_channel", payload, job_id="select_channel:unacked")
        finally:
            replicated.replicas[0].thaw()
        again = await client.enqueue_raw("select_channel", payload, job_id="select_channel:unacked")
        again_on_replica = await replica.exists(ARQ_JOB_PREFIX + "select_channel:unacked")

    assert (acked.created, on_replica) == (True, 1)
    # The first call wrote the job on the primary and only its confirmation failed: written once.
    assert (again.created, again_on_replica) == (False, 1)


async def test_a_write_to_a_replica_is_a_transient_redis_fault(
    primary: str, replicated: Replicated, clock: FixedClock, factory: Factory, today: date
) -> None:
    """What a client still connected to a primary that a failover demoted meets: READONLY."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    async with service(f"redis://127.0.0.1:{replicated.replicas[0].port}/0", clock, 0) as on_replica:
        with pytest.raises(redis.exceptions.ReadOnlyError) as refused:
            await reserve_one(on_replica, tenant, phone, today)

    assert transient_fault(refused.value) is Dependency.REDIS


async def test_route_with_replica_acks_counts_once_and_keeps_an_earlier_try_s_phone(
    acked: Deps, replica: Redis, factory: Factory, engine: AsyncEngine, today: date
) -> None:
    """The reservation-first path of route (replicas required) keeps route's rules: a retried router job
    enqueues and counts nothing twice, a retry finds the phone an earlier try rerouted to, and a phone
    without quota gets nothing."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    asked = await factory.phone(tenant, status="BANNED")
    other = await factory.phone(tenant, daily_limit=2)
    full = await factory.phone(tenant, daily_limit=0)
    lead = await factory.lead(tenant, assigned_phone_id=asked)

    async def routed(phone: UUID, job_id: str) -> dict[str, Any]:
        payload = {"leadId": str(lead), "phoneId": str(phone), "messageType": "FOLLOWUP", "payload": {}}
        return await route(job_ctx(acked, job_id=job_id), payload)

    rerouted = await routed(asked, "router-1")
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"UPDATE wa_phone_numbers SET status = 'ACTIVE' WHERE id = '{asked}'")
    retried = await routed(asked, "router-1")  # the asked phone is back: the earlier try's phone is kept
    again = await routed(other, "router-2")
    twice = await routed(other, "router-2")
    refused = await routed(full, "router-3")

    assert (rerouted["phoneId"], rerouted["enqueued"]) == (str(other), True)
    assert (retried["routed"], retried["phoneId"], retried["enqueued"]) == (True, str(other), False)
    assert (again["enqueued"], twice["enqueued"]) == (True, False)
    assert refused["routed"] is False
    counters = [await replica.get(quota_key(phone, today)) for phone in (asked, other, full)]
    assert counters == [None, b"2", None]
