"""Chaos: three worker processes, one SIGKILLed at random about every second, under a full dispatch queue.

Thousands of due leads, 20 phones whose total quota is below the WhatsApp demand, and small dispatch
batches, so that kills land inside dispatches. Killed dispatch jobs stay in arq's queue and run again on
another process once their in-progress key expires (the 30 s timeout + 10 s). One of the three pauses
half a second right after each commit, so that many kills land between a commit and its enqueue. The
test proves the kills really interrupted dispatches (stored results with job_try > 1), and that some
re-run relayed the batch its own killed try had committed (its log line says so). Then, as soon as the
dispatch queue is drained and no dispatch is in progress, with no waiting and no extra dispatch, it counts
from PostgreSQL and Redis: no lead with two jobs, no phone over its daily_limit by jobs or by counter, no
lead marked dispatched without its job in its queue, no job whose lead is not marked, nothing left in
the outbox; and the evidence both ways (issue 11): no job on a queue without its outreach_messages row,
no row whose job never reached a queue, no job with two rows. OUTBOX_RELAY_GRACE_S is an hour: no batch
goes out because it is old. And sender safety (issue 10): no two messages of one phone scheduled closer
than the tenant's wa_min_gap_s, every job scheduled at the slot its reservation holds (a re-run keeps its
time), and the second tenant, whose portfolio budget is below its quota, messages exactly that many
unique recipients.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.domain.quota import quota_date
from src.names import ARQ_IN_PROGRESS_PREFIX, ARQ_RESULT_PREFIX, Queue
from src.redis_io.codec import job_deserializer
from tests.support.clock import configured_now
from tests.support.factories import Factory, bulk_leads
from tests.support.invariants import ledger
from tests.support.tenants import ALWAYS_OPEN, noon_zone
from tests.support.workers import WorkerProcess, Workers

CHAOS_SECONDS = 35
PROCESSES = 3
# Enough leads that dispatches still have leads to decide on when the chaos ends (about 100 batches
# of 10 a second): a dispatch of nothing is over too fast for a kill to land in it.
LEADS_PER_TENANT = 20_000
PHONES_PER_TENANT = 10
DAILY_LIMIT = 100  # 20 phones x 100 = 2000 sends for ~32,000 WhatsApp-reachable leads
PORTFOLIO_LIMIT = 600  # the second tenant's unique recipients in 24 h, below its 1000 of quota
# Paced, with gaps short enough that a phone's 100 messages fit in the half day the tenants' zone leaves
# at any TEST_NOW (noon_zone: the test's instant reads about noon there).
PACE = {"wa_min_gap_s": 5, "wa_jitter_s": 5}
BATCH = 10
BOOT_S = 1.5  # a restarted worker takes about a second to import and start taking jobs
WORKER_ENV = {"DISPATCH_CRON_ENABLED": "false", "OUTBOX_RELAY_GRACE_S": "3600", "LOG_LEVEL": "WARNING"}
# Worker 0 pauses after each commit: with 20 dispatches at once, a kill there lands mostly in the pause.
PAUSING_ENV = {**WORKER_ENV, "CHAOS_PAUSE_AT": "after_commit", "CHAOS_PAUSE_S": "0.5"}
OWN_RELAY_LINE = "jobs of its own earlier try"


def worker(workers: Workers, slot: int) -> WorkerProcess:
    return workers.new("DispatchSettings", **(PAUSING_ENV if slot == 0 else WORKER_ENV)).start()


async def keep_queue_full(
    client: OutreachClient, redis: Redis, tenants: list[UUID], stop: asyncio.Event
) -> int:
    enqueued = 0
    while not stop.is_set():
        # A killed job stays in the queue until its in-progress key expires (40 s): count only the jobs
        # enqueued in the last second, the ones waiting for a worker.
        waiting = await redis.zcount(Queue.DISPATCH.value, (time.time() - 1) * 1000, "+inf")
        if waiting < 60:
            for tenant in tenants:
                await client.dispatch(tenant_id=tenant, batch_size=BATCH)
                enqueued += 1
        await asyncio.sleep(0.02)
    return enqueued


async def interrupted_and_rerun(redis: Redis) -> tuple[int, int]:
    """(dispatch results stored, those whose job_try > 1): proof that kills landed inside dispatches."""
    results = reruns = 0
    async for key in redis.scan_iter(match=ARQ_RESULT_PREFIX + "dispatch:*", count=1000):
        raw = await redis.get(key)
        if raw is None:
            continue
        result = job_deserializer(raw)
        results += 1
        reruns += result["t"] > 1
    return results, reruns


async def dispatch_work_pending(redis: Redis) -> bool:
    if await redis.zcard(Queue.DISPATCH.value):
        return True
    async for _ in redis.scan_iter(match=ARQ_IN_PROGRESS_PREFIX + "dispatch:*", count=1000):
        return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_random_sigkills_lose_and_double_nothing(
    factory: Factory, engine: AsyncEngine, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    started = configured_now()  # where the workers' clocks start (the `workers` fixture)
    zone = noon_zone(started)
    today = quota_date(started, zone)
    paced = {**ALWAYS_OPEN, **PACE, "timezone": zone}
    tenants = [
        await factory.tenant(**paced),
        await factory.tenant(**paced, wa_portfolio_limit=PORTFOLIO_LIMIT),
    ]
    phones: dict[UUID, list[str]] = {}
    for n, tenant in enumerate(tenants):
        for _ in range(PHONES_PER_TENANT):
            phones.setdefault(tenant, []).append(str(await factory.phone(tenant, daily_limit=DAILY_LIMIT)))
        await bulk_leads(engine, tenant, LEADS_PER_TENANT, whatsapp_percent=80, offset=n * LEADS_PER_TENANT)
    rng = random.Random()

    running = [worker(workers, slot) for slot in range(PROCESSES)]
    every_worker = list(running)
    stop = asyncio.Event()
    feeder = asyncio.create_task(keep_queue_full(client, redis, tenants, stop))
    kills = 0
    try:
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.6, 1.4))
            # A worker still booting has no job to interrupt: kill one that has been taking jobs.
            serving = [n for n, w in enumerate(running) if time.monotonic() - w.started_at > BOOT_S]
            victim = rng.choice(serving or range(PROCESSES))
            running[victim].signal(signal.SIGKILL)
            await running[victim].wait_exit(timeout=10)
            kills += 1
            running[victim] = worker(workers, victim)
            every_worker.append(running[victim])
        stop.set()
        await feeder

        # Calm: the survivors run the interrupted jobs again once their in-progress keys expire.
        calm_deadline = time.monotonic() + 120
        while await dispatch_work_pending(redis):
            assert time.monotonic() < calm_deadline, "dispatch queue did not drain after the chaos"
            await asyncio.sleep(0.5)
        # Every dispatch job has completed: what holds must hold now.
        book = await ledger(engine, redis, today)
    finally:
        stop.set()
        for process in running:
            process.kill()

    results, reruns = await interrupted_and_rerun(redis)
    own_relays = sum(process.output().count(OWN_RELAY_LINE) for process in every_worker)
    print(
        f"\nchaos: {kills} SIGKILLs in {CHAOS_SECONDS}s, {results} dispatch jobs completed, {reruns} of them "
        f"re-run after a kill, {own_relays} of those relayed their own killed try's batch; "
        f"{sum(book.jobs_per_lead.values())} outreach jobs for {len(book.marked)} marked leads, "
        f"{sum(book.evidence.values())} evidence rows; "
        f"quota used {sum(book.counters.values())} of {sum(book.limits.values())}, "
        f"{sum(len(slots) for slots in book.slots_per_phone.values())} paced WhatsApp jobs"
    )
    assert kills >= 25
    assert reruns > 0, "no dispatch was interrupted and re-run: the kills proved nothing"
    book.assert_clean()
    assert book.jobs
    assert sum(book.evidence.values()) == len(book.jobs)
    # Demand exceeded supply: the first tenant used all its quota, the second all its portfolio budget.
    unlimited, budgeted = tenants
    assert sum(book.counters[p] for p in phones[unlimited]) == PHONES_PER_TENANT * DAILY_LIMIT
    assert sum(book.counters[p] for p in phones[budgeted]) == PORTFOLIO_LIMIT
    assert len(book.recipients[str(budgeted)]) == PORTFOLIO_LIMIT
    assert own_relays >= 1, "no re-run relayed its own killed try: no kill landed between commit and enqueue"
