"""A Redis failover under load, for real: worker processes on `redis+sentinel://` serve a steady stream of
dispatch and route jobs, a sender takes what they queue, then the primary is SIGKILLed and the sentinels
promote its replica. What every process did, what went out and what is left is counted afterwards.

tests/e2e/failure/test_failover.py runs it with REDIS_MIN_REPLICA_ACKS=1 and asserts that nothing was
lost; bench/failover_loss.py runs it with 0 and 1 and counts what each loses.

The replica can be made to lag (`Shape.lag_s`: cut off from the primary for that long right before the
kill), so that writes the primary acknowledged are sure to be missing from it when it is promoted, as
they are when a replica falls behind (a network blip, a busy host, a burst of writes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.names import ARQ_IN_PROGRESS_PREFIX, Queue
from src.redis_io.connection import close_redis, create_redis_client
from tests.support.factories import Factory, bulk_leads
from tests.support.failover_tally import Tally, tally
from tests.support.failover_traffic import FAULTS, Sender, Traffic, follow_times, output_queues
from tests.support.sentinel import SentinelTopology
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import WorkerProcess, Workers

# The all-queues process and two one-queue processes: each kind must follow the new primary.
PROCESSES = ("Settings", "DispatchSettings", "RouterSettings")


@dataclass(frozen=True)
class Shape:
    phones: int = 8
    daily_limit: int = 120  # 960 sends for ~80 WhatsApp leads and 30 routed messages a second
    leads: int = 3000
    dispatches_per_s: float = 10.0
    routes_per_s: float = 30.0
    batch: int = 10
    load_before_s: float = 4.0
    lag_s: float = 1.0  # well under the sentinels' down-after (2 s): the replica stays eligible
    load_after_s: float = 8.0
    drain_timeout_s: float = 150.0  # a killed dispatch runs again once its in-progress key expires (40 s)


@dataclass
class Report:
    acks: int
    failover_s: float  # the kill -> every sentinel names the promoted replica, which says it is primary
    follow_s: dict[str, float]  # per process: the kill -> its "Redis reachable again"
    rejoin_s: float  # the killed server started again as a replica -> it acknowledges writes
    tally: Tally
    failovers: int = 0  # made by the sentinels in the whole run: 1 unless they failed over again
    outputs: dict[str, str] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    def summary(self) -> str:
        follow = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.follow_s.items())
        return (
            f"REDIS_MIN_REPLICA_ACKS={self.acks}: {self.failovers} failover(s), the first in {self.failover_s:.1f}s, "
            "workers followed after "
            f"{follow}, old primary back as a replica in {self.rejoin_s:.1f}s; {self.tally.summary()}"
        )


async def populate(
    factory: Factory, engine: AsyncEngine, shape: Shape
) -> tuple[UUID, list[UUID], list[UUID]]:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phones = [await factory.phone(tenant, daily_limit=shape.daily_limit) for _ in range(shape.phones)]
    await bulk_leads(engine, tenant, shape.leads, whatsapp_percent=80, offset=0)
    async with engine.connect() as conn:
        leads = [row[0] for row in await conn.exec_driver_sql("SELECT lead_id FROM gold_lead_journey")]
    return tenant, phones, leads


async def run_failover(
    topology: SentinelTopology,
    workers: Workers,
    factory: Factory,
    engine: AsyncEngine,
    day: date,
    *,
    acks: int,
    shape: Shape = Shape(),
) -> Report:
    """The whole scenario on a started `topology`, whose database 0 and the test tables are empty."""
    tenant, phones, leads = await populate(factory, engine, shape)
    url = topology.url()
    redis = create_redis_client(url, max_connections=50, timeout_s=1.0)
    env = {"REDIS_URL": url, "REDIS_MIN_REPLICA_ACKS": str(acks), "LOG_LEVEL": "INFO"}
    processes = {name: workers.new(name, **env).start() for name in PROCESSES}
    try:
        for process in processes.values():
            await process.wait_healthy(redis, timeout=30)
        async with OutreachClient.connect(url) as client:
            traffic = Traffic(client, redis, tenant, phones, leads, shape)
            sender = Sender(redis, await output_queues(engine))
            report = await _under_load(topology, processes, traffic, sender, shape, acks)
        report.tally = await tally(redis, engine, day, traffic, sender)
        report.failovers = await topology.failovers()
        report.outputs = {name: process.output() for name, process in processes.items()}
        report.exit_codes = {name: p.process.poll() if p.process else None for name, p in processes.items()}
        return report
    finally:
        for process in processes.values():
            await process.stop()
        await close_redis(redis)


async def _under_load(
    topology: SentinelTopology,
    processes: dict[str, WorkerProcess],
    traffic: Traffic,
    sender: Sender,
    shape: Shape,
    acks: int,
) -> Report:
    stop_traffic, stop_all = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(traffic.run(stop_traffic)),
        asyncio.create_task(traffic.watch_routes(stop_all)),
        asyncio.create_task(sender.run(stop_all)),
    ]
    try:
        await asyncio.sleep(shape.load_before_s)
        report = await _fail_over(topology, processes, shape, acks)
        await asyncio.sleep(shape.load_after_s)
        stop_traffic.set()
        await _drained(traffic.redis, shape.drain_timeout_s)
        await asyncio.sleep(1.0)  # the sender's and the watch's last passes
    finally:
        stop_traffic.set()
        stop_all.set()
        await asyncio.gather(*tasks)
    return report


async def _fail_over(
    topology: SentinelTopology, processes: dict[str, WorkerProcess], shape: Shape, acks: int
) -> Report:
    """Cut the replica off for `lag_s`, SIGKILL the primary, let the replica go; time the promotion, the
    workers' return and the old primary's return as a replica."""
    replica = topology.replicas[0]
    if shape.lag_s:
        await topology.cut_off(replica)
        await asyncio.sleep(shape.lag_s)
    killed_at = time.monotonic()
    old = await topology.kill_primary()
    if shape.lag_s:
        replica.thaw()
    following = asyncio.create_task(follow_times(processes, killed_at))
    await topology.wait_promoted(old)
    failover_s = time.monotonic() - killed_at
    rejoin_s = await topology.rejoin(old)
    follow_s = await following
    return Report(acks, failover_s, follow_s, rejoin_s, tally=Tally())


async def _drained(redis: Redis, timeout: float) -> None:
    """Until every dispatch and route job has completed: their queues are empty (no retry deferred) and none
    is in progress."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not await _work_pending(redis):
                return
        except FAULTS:
            pass
        assert time.monotonic() < deadline, "dispatch and route jobs still pending after the failover"
        await asyncio.sleep(0.5)


async def _work_pending(redis: Redis) -> bool:
    if await redis.zcard(Queue.DISPATCH.value) or await redis.zcard(Queue.ROUTER.value):
        return True
    async for _ in redis.scan_iter(match=ARQ_IN_PROGRESS_PREFIX + "*", count=1000):
        return True
    return False
