"""Dispatch throughput: the service's `dispatch` job against the spec's reference algorithm, same data.

    .venv/bin/python -m bench.dispatch_throughput             # 20,000 leads, 50 phones
    .venv/bin/python -m bench.dispatch_throughput --quick     # 4,000 leads
    .venv/bin/python -m bench.dispatch_throughput --profile   # also a pyinstrument profile of (a)

Data: one tenant (sending window always open), 50 phones of which 4 are paused, banned or disabled, one
phone's quota already spent today, and leads with realistic variety: numbers in several formats (some
unusable), most WhatsApp-able, some e-mail only, some opted out of one channel or both, a quarter sticky
on a phone (some on an unavailable one), 3% held for human review, mixed priorities and sequences, next
action never set or in the past. Daily limits (500 a phone) cover every WhatsApp lead, so both algorithms
enqueue a job for every lead that has a channel: the comparison is like for like.

(a) the service: the real job function `src.jobs.dispatch.dispatch` with a real Deps (`build_deps`, clock
    fixed at a Wednesday 10:00 in Bucharest), called with batchSize N until a call finds no due lead
    (the service moves every decided lead out of the due set). Measured at the headline batch size and at
    100, the cron's batch.
(b) the spec's algorithm (bench/spec_port.py), ported as written: per lead one `ArqRedis.enqueue_job`
    and, for a new sticky phone, one UPDATE. The spec never moves a lead out of the due set, so the
    harness pages through it with OFFSET, batch by batch, until a page is empty: each due lead is
    processed exactly once, as in (a). The port gets an engine without pool pre-ping (the service's has
    one), which can only favour the port.

Both runs start from the same generated data (the tables and the Redis database are emptied and the
data regenerated from the same seed between runs) and are measured in the same process and run.
leads/s = leads selected and decided / wall time of the whole loop. Target: (a) >= 10x (b).
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from typing import Any

import uvloop
from arq.connections import RedisSettings, create_pool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    OPEN_HOURS,
    Target,
    TenantData,
    add_leads,
    add_tenant,
    bench_deps,
    connect,
    prepare,
    reset,
    verdict,
)
from bench.spec_port import spec_dispatch
from src.deps import close_deps
from src.domain.channels import normalize_phone
from src.domain.quota import quota_date
from src.jobs.dispatch import dispatch
from src.log import configure_logging
from src.names import Queue, quota_key
from src.serialization import job_deserializer, job_serializer

TARGET_RATIO = 10.0
DAILY_LIMIT = 500


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
        await apg.execute("VACUUM ANALYZE gold_lead_journey, gold_companies, wa_phone_numbers")
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


async def run_service(target: Target, tenant: TenantData, batch: int, profile: bool = False) -> Run:
    deps = await bench_deps(target)
    normalize_phone.cache_clear()  # every lead's number is new to this process, as in production
    payload = {"correlationId": "bench", "tenantId": str(tenant.id), "batchSize": batch}
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
    try:
        async with deps.engine.connect() as conn:  # connect before the clock starts, like the port
            await conn.execute(text("SELECT 1"))
        await deps.redis.ping()
        leads = calls = 0
        if profiler:
            profiler.start()
        started = time.perf_counter()
        while True:
            ctx = {"deps": deps, "job_id": f"bench-dispatch-{calls}", "job_try": 1, "queue": Queue.DISPATCH}
            result = await dispatch(ctx, payload)
            calls += 1
            if not result["totalEligibleLeads"]:
                break
            leads += result["totalEligibleLeads"]
        seconds = time.perf_counter() - started
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
    print(f"dispatch throughput: {args.leads} leads, {args.phones} phones, database {target.database}")

    async def fresh() -> TenantData:
        return await populate(target, seed=args.seed, leads=args.leads, phones=args.phones)

    service = await run_service(target, await fresh(), args.batch, profile=args.profile)
    spec = await run_spec(target, await fresh(), args.batch)
    service_100 = await run_service(target, await fresh(), 100)

    ratio = service.rate / spec.rate
    ratio_100 = service_100.rate / spec.rate
    print(_row("(a) service dispatch", args.batch, service))
    print(_row("(a) service dispatch", 100, service_100))
    print(_row("(b) spec algorithm, as written", args.batch, spec))
    ok = verdict(ratio >= TARGET_RATIO)
    print(f"  ratio (a)/(b) at batch {args.batch}: {ratio:.1f}x   target >= {TARGET_RATIO:.0f}x   {ok}")
    print(f"  ratio (a)/(b) with (a) at batch 100: {ratio_100:.1f}x (for information)")
    return 0 if ratio >= TARGET_RATIO else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--phones", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000, help="headline batch size (max 1000)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--quick", action="store_true", help="4,000 leads")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of run (a)")
    args = parser.parse_args(argv)
    if args.quick:
        args.leads = min(args.leads, 4_000)
    return args


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
