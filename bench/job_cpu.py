"""CPU per job of select_channel, allocate_phone and route, called in-process one after another: what
each job costs a worker beyond arq's own handling, and how that grows with the tenant's phones.

    .venv/bin/python -m bench.job_cpu                  # 2,000 jobs per kind, 4 and 50 phones
    .venv/bin/python -m bench.job_cpu --profile route  # and a cProfile of that job at 50 phones

Same data and jobs as bench/per_lead_jobs.py (one tenant, 2,000 leads, some phones unavailable), with
the process set up as the worker is (uvloop, logging at INFO, start-up heap frozen). The figure is
process CPU time per job, so it includes the client side of every PostgreSQL and Redis round trip but
not the servers' work. Beside each job, a job of only the round trips that job cannot do without (its
floor in bench/per_lead_jobs.py: `SELECT 1` on a pooled connection, a Redis GET) splits its CPU into those
round trips and the rest: parsing its input, decoding its rows, the law's checks, the decision, its result.
For information: the targets are those of bench/per_lead_jobs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import uvloop

from bench.common import Target, bench_deps
from bench.per_lead_jobs import FLOOR, jobs_for, populate
from bench.worker_process import round_trips
from src.jobs.allocate_phone import allocate_phone
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.names import Function
from src.runtime.deps import close_deps
from src.runtime.log import configure_logging
from src.runtime.queues import freeze_startup_heap
from tests.support.jobs import job_ctx

JOBS: dict[Function, Any] = {
    Function.SELECT_CHANNEL: select_channel,
    Function.ALLOCATE_PHONE: allocate_phone,
    Function.ROUTE: route,
}


async def measure(
    target: Target, *, phones: int, count: int, profile: Function | None
) -> tuple[dict[Function, float], dict[Function, float]]:
    """CPU per job of each kind, and of a job of only that kind's round trips (its floor)."""
    scenario = await populate(target, seed=1, leads=2000, phones=phones)
    deps = await bench_deps(target)
    freeze_startup_heap()
    cpu: dict[Function, float] = {}
    floor: dict[Function, float] = {}
    try:
        for function, job in JOBS.items():
            profiler = cProfile.Profile() if function is profile else None
            started = time.process_time()
            if profiler:
                profiler.enable()
            for outgoing in jobs_for(function, scenario, count, seed=2):
                ctx = job_ctx(deps, job_id=outgoing.job_id, queue=outgoing.queue)
                await job(ctx, outgoing.payload)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            cpu[function] = (time.process_time() - started) / count * 1e6
            trips = round_trips(*FLOOR[function])
            started = time.process_time()
            for outgoing in jobs_for(function, scenario, count, seed=2):
                await trips(job_ctx(deps, job_id=outgoing.job_id, queue=outgoing.queue), outgoing.payload)
            floor[function] = (time.process_time() - started) / count * 1e6
    finally:
        await close_deps(deps)
    return cpu, floor


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--profile", choices=[f.value for f in JOBS], default=None)
    args = parser.parse_args()
    configure_logging("INFO", "text")
    target = Target.from_env()
    print(f"CPU per job, in-process, {args.jobs} jobs per kind, database {target.database}")
    for phones in (4, 50):
        profile = Function(args.profile) if args.profile and phones == 50 else None
        cpu, floor = await measure(target, phones=phones, count=args.jobs, profile=profile)
        print(
            f"  {phones:>2} phones: "
            + ", ".join(
                f"{f.value} {us:.0f} us ({floor[f]:.0f} its round trips, {us - floor[f]:.0f} the rest)"
                for f, us in cpu.items()
            )
        )


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
