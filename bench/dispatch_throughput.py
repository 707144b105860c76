"""Dispatch throughput: the service's `dispatch` job against the spec's reference algorithm, same data.

    .venv/bin/python -m bench.dispatch_throughput             # 20,000 leads, 50 phones
    .venv/bin/python -m bench.dispatch_throughput --quick     # 4,000 leads
    .venv/bin/python -m bench.dispatch_throughput --profile   # also a pyinstrument profile of (a)
    .venv/bin/python -m bench.dispatch_throughput --replica   # (a) on a primary + replica, acks 0 vs 1

Data: one tenant (sending window always open), 50 phones of which 4 are paused, banned or disabled, one
phone's quota already spent today, and leads with realistic variety: numbers in several formats (some
unusable), most WhatsApp-able, some e-mail only, some opted out of one channel or both, a quarter sticky
on a phone (some on an unavailable one), 3% held for human review, mixed priorities and sequences, next
action never set or in the past. Every lead has a lawful basis for both channels that the tenant allows,
and 10,000 suppression entries are present (half the tenant's, half global; addresses, domains, numbers),
none naming a generated lead. Daily limits (500 a phone) cover every WhatsApp lead, so both algorithms
enqueue a job for every lead that has a channel: the comparison is like for like.

(a) the service: the real job function `src.jobs.dispatch.dispatch` with a real Deps (`build_deps`, clock
    fixed at a Wednesday 10:00 in Bucharest), called with batchSize N until a call finds no due lead
    (the service moves every decided lead out of the due set). Measured at the headline batch size and at
    100, the cron's batch.
(b) the spec's algorithm (bench/spec_port.py), ported as written: per lead one `ArqRedis.enqueue_job`
    and, for a new sticky phone, one UPDATE. The spec never moves a lead out of the due set, so the
    harness pages through it with OFFSET, batch by batch, until a page is empty: each due lead is
    processed exactly once, as in (a). Its engine has no pool pre-ping (the service's has none either: it
    checks a pooled connection's socket instead), and BullMQ's per-lead `job.updateProgress` is left out
    (arq has no progress), which can only favour the port.

Every run starts from the same generated data (the tables and the Redis database are emptied and the
data regenerated from the same seed), all in the same process and run. leads/s = leads selected and
decided / wall time of the whole loop. The runs are repeated in rounds (a, b, a at 100, a with two
dispatchers), and each figure is the median over the rounds, the ratio the median of the rounds' ratios,
so that noise from other work on the machine falls on both sides. Target: (a) >= 10x (b), one
dispatcher each. The figure with two dispatch jobs at once on the same tenant (they share nothing: FOR
UPDATE SKIP LOCKED) is for information: the spec's algorithm cannot run twice at once without
dispatching the same leads twice.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import uvloop
from arq.connections import RedisSettings, create_pool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    Target,
    TenantData,
    add_leads,
    add_suppressions,
    add_tenant,
    bench_deps,
    connect,
    prepare,
    reset,
    verdict,
)
from bench.spec_port import spec_dispatch
from src.domain.channels import normalize_phone
from src.domain.quota import quota_date
from src.jobs.dispatch import dispatch
from src.names import Queue, quota_key
from src.redis_io.codec import job_deserializer, job_serializer
from src.runtime.deps import close_deps
from src.runtime.log import configure_logging
from src.runtime.queues import freeze_startup_heap
from tests.support.clock import OPEN_HOURS
from tests.support.jobs import job_ctx
from tests.support.sentinel import Replicated

TARGET_RATIO = 10.0
DAILY_LIMIT = 500
SUPPRESSIONS = 10_000


@dataclass(frozen=True)
class Run:
    leads: int
    calls: int
    seconds: float
    jobs_in_redis: int

    @property
    def rate(self) -> float:
        return self.leads / self.seconds


async def populate(target: Target, *, seed: int, leads: int, phones: int) -> TenantData:
    apg = await connect(target)
    deps = await bench_deps(target)
    try:
        await reset(apg, deps.redis)
        rng = random.Random(seed)
        tenant = await add_tenant(apg, rng, index=0, phones=phones, daily_limit=DAILY_LIMIT)
        await add_leads(apg, rng, tenant, leads)
        await add_suppressions(apg, seed + 1, tenant.id, SUPPRESSIONS)
        await apg.execute("VACUUM ANALYZE gold_lead_journey, gold_companies, wa_phone_numbers, suppressions")
        full = next(p for p in tenant.phones if p.available)
        await deps.redis.set(quota_key(full.id, quota_date(OPEN_HOURS, "Europe/Bucharest")), DAILY_LIMIT)
    finally:
        await apg.close()
        await close_deps(deps)
    return tenant


async def _jobs_written(target: Target) -> int:
    deps = await bench_deps(target)
    try:
        queues = [key async for key in deps.redis.scan_iter(match="q:*", _type="zset")]
        return sum([await deps.redis.zcard(q) for q in queues])
    finally:
        await close_deps(deps)


async def run_service(
    target: Target,
    tenant: TenantData,
    batch: int,
    *,
    dispatchers: int = 1,
    profile: bool = False,
    acks: int = 0,
) -> Run:
    deps = await bench_deps(target, redis_min_replica_acks=acks)
    normalize_phone.cache_clear()  # every lead's number is new to this process, as in production
    freeze_startup_heap()  # as the worker does once it has started
    payload = {"correlationId": "bench", "tenantId": str(tenant.id), "batchSize": batch}
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
    try:
        async with deps.pg.acquire() as conn:  # connect before the clock starts, like the port
            await conn.execute("SELECT 1")
        await deps.redis.ping()
        counts = {"leads": 0, "calls": 0}

        async def loop(name: int) -> None:
            while True:
                job_id = f"bench-dispatch-{name}-{counts['calls']}"
                ctx = job_ctx(deps, job_id=job_id, queue=Queue.DISPATCH)
                result = await dispatch(ctx, payload)
                counts["calls"] += 1
                if not result["totalEligibleLeads"]:
                    return
                counts["leads"] += result["totalEligibleLeads"]

        if profiler:
            profiler.start()
        started = time.perf_counter()
        await asyncio.gather(*(loop(n) for n in range(dispatchers)))
        seconds = time.perf_counter() - started
        leads, calls = counts["leads"], counts["calls"]
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        await close_deps(deps)
    return Run(leads, calls, seconds, await _jobs_written(target))


async def run_spec(target: Target, tenant: TenantData, batch: int) -> Run:
    engine = create_async_engine(target.database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    arq = await create_pool(
        RedisSettings.from_dsn(target.redis_url),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        await arq.ping()
        leads = calls = 0
        started = time.perf_counter()
        while True:
            result = await spec_dispatch(
                engine,
                arq,
                tenant_id=tenant.id,
                correlation_id="bench",
                batch_size=batch,
                now=OPEN_HOURS,
                offset=leads,
            )
            calls += 1
            if not result.total_eligible_leads:
                break
            leads += result.total_eligible_leads
        seconds = time.perf_counter() - started
    finally:
        await arq.aclose()
        await engine.dispose()
    return Run(leads, calls, seconds, await _jobs_written(target))


def _row(name: str, batch: int, run: Run) -> str:
    return (
        f"  {name:<34} batch {batch:>4}: {run.leads:>6} leads in {run.seconds:6.2f} s "
        f"({run.calls} calls) = {run.rate:8.0f} leads/s, {run.jobs_in_redis} jobs written"
    )


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = Target.from_env()
    await prepare(target)
    print(
        f"dispatch throughput: {args.leads} leads, {args.phones} phones, {args.rounds} round(s), "
        f"database {target.database}"
    )

    async def fresh() -> TenantData:
        return await populate(target, seed=args.seed, leads=args.leads, phones=args.phones)

    runs: dict[str, list[Run]] = {"service": [], "spec": [], "service_100": [], "service_x2": []}
    for round_no in range(args.rounds):
        profile = args.profile and round_no == 0
        runs["service"].append(await run_service(target, await fresh(), args.batch, profile=profile))
        runs["spec"].append(await run_spec(target, await fresh(), args.batch))
        runs["service_100"].append(await run_service(target, await fresh(), 100))
        runs["service_x2"].append(await run_service(target, await fresh(), args.batch, dispatchers=2))
        last = {name: f"{measured[-1].rate:.0f}" for name, measured in runs.items()}
        print(
            f"  round {round_no + 1}: (a) {last['service']}, (b) {last['spec']}, (a) at 100 "
            f"{last['service_100']}, (a) x2 {last['service_x2']} leads/s",
            flush=True,
        )

    def median_run(name: str) -> Run:
        return sorted(runs[name], key=lambda run: run.rate)[len(runs[name]) // 2]

    def ratio(name: str) -> float:
        return statistics.median(a.rate / b.rate for a, b in zip(runs[name], runs["spec"], strict=True))

    print("results (median over rounds):")
    print(_row("(a) service dispatch", args.batch, median_run("service")))
    print(_row("(a) service dispatch", 100, median_run("service_100")))
    print(_row("(a) two dispatchers at once", args.batch, median_run("service_x2")))
    print(_row("(b) spec algorithm, as written", args.batch, median_run("spec")))
    headline = ratio("service")
    ok = verdict(headline >= TARGET_RATIO)
    print(f"  ratio (a)/(b) at batch {args.batch}: {headline:.1f}x   target >= {TARGET_RATIO:.0f}x   {ok}")
    print(f"  ratio (a)/(b) with (a) at batch 100: {ratio('service_100'):.1f}x (for information)")
    print(f"  ratio (a)/(b) with two dispatchers: {ratio('service_x2'):.1f}x (for information)")
    return 0 if headline >= TARGET_RATIO else 1


async def main_replicated(args: argparse.Namespace) -> int:
    """The cost of REDIS_MIN_REPLICA_ACKS=1: the service's dispatch against a primary with one replica
    (redis-server --replicaof, both of this run's own, on loopback), each round with 0 then with 1."""
    configure_logging("WARNING")
    servers = Replicated(replicas=1)
    try:
        await servers.start()
        target = replace(Target.from_env(), redis_url=servers.url(Target.from_env().redis_db))
        await prepare(target)
        print(
            f"dispatch throughput against a primary and a replica: {args.leads} leads, {args.rounds} round(s)"
        )
        runs: dict[tuple[int, int], list[Run]] = {}
        for round_no in range(args.rounds):
            for batch in (args.batch, 100):
                for acks in (0, 1):
                    tenant = await populate(target, seed=args.seed, leads=args.leads, phones=args.phones)
                    runs.setdefault((batch, acks), []).append(
                        await run_service(target, tenant, batch, acks=acks)
                    )
            print(f"  round {round_no + 1} done", flush=True)
    finally:
        servers.close()
    for batch in (args.batch, 100):
        without, with_acks = (
            sorted(runs[batch, acks], key=lambda run: run.rate)[args.rounds // 2] for acks in (0, 1)
        )
        ratio = statistics.median(
            b.rate / a.rate for a, b in zip(runs[batch, 0], runs[batch, 1], strict=True)
        )
        print(_row("REDIS_MIN_REPLICA_ACKS=0", batch, without))
        print(_row("REDIS_MIN_REPLICA_ACKS=1", batch, with_acks))
        print(f"  batch {batch}: with acks / without = {ratio:.2f} (median of the rounds' ratios)")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--phones", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000, help="headline batch size (max 1000)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4,000 leads, one round")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of run (a)")
    parser.add_argument(
        "--replica",
        action="store_true",
        help="instead: (a) against a primary and a replica, REDIS_MIN_REPLICA_ACKS 0 vs 1",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.leads, args.rounds = min(args.leads, 4_000), 1
    return args


if __name__ == "__main__":
    arguments = parse()
    raise SystemExit(uvloop.run(main_replicated(arguments) if arguments.replica else main(arguments)))
