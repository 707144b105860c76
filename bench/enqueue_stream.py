"""A stream of enqueues, as an ops script in a loop makes it: what the worker spends per job on its polls.

    .venv/bin/python -m bench.enqueue_stream                       # 2,000 jobs at 100/s and at 400/s
    .venv/bin/python -m bench.enqueue_stream --before /tmp/before  # also an earlier tree's worker

A real `arq src.worker.SelectorSettings` process; select_channel jobs (the data of bench/per_lead_jobs.py)
enqueued through the project's client at a steady rate, each enqueue publishing its wake-up message,
then every result awaited. Prints the worker's CPU per job and arq's polls (ZRANGEBYSCORE, from Redis's
INFO commandstats) per job. A wake-up polls at once but not within WAKE_GAP_SHARE x POLL_DELAY_S of the
last poll (src/runtime/wakeup.py): without that gap a stream cost a poll per job. For information, no
target: the worker's CPU per job moves with the machine; compare trees alternated in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import uvloop
from redis.asyncio import Redis

from bench.common import Target, bench_deps, prepare
from bench.per_lead_jobs import jobs_for, populate
from bench.through_worker import CpuMeter, worker_process
from src.client import OutreachClient
from src.names import Function
from src.runtime.deps import close_deps
from src.runtime.log import configure_logging
from tests.support.services import command_calls


async def polls(redis: Redis) -> int:
    return (await command_calls(redis)).get("zrangebyscore", 0)


async def measure(target: Target, rate: float, count: int, source: Path | None) -> tuple[float, float]:
    """(worker CPU us per job, polls per job) of `count` jobs enqueued at `rate` a second."""
    scenario = await populate(target, seed=1, leads=2000)
    jobs = jobs_for(Function.SELECT_CHANNEL, scenario, count, seed=2)
    deps = await bench_deps(target)
    worker = worker_process(target, "SelectorSettings", source=source).start()
    try:
        await worker.wait_healthy(deps.redis, timeout=60)
        await asyncio.sleep(1.0)  # past start-up, in its idle wait
        async with OutreachClient.connect(target.redis_url) as client:
            polls_before = await polls(deps.redis)
            meter = CpuMeter(worker.pid)
            started = time.perf_counter()
            handles = []
            for n, job in enumerate(jobs):
                ahead = started + n / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                handles.append(await client.enqueue_raw(Function.SELECT_CHANNEL, job.payload))
            for handle in handles:
                await handle.result(timeout=60)
            cpu_s = meter.spent()["worker"]
            polled = await polls(deps.redis) - polls_before
    finally:
        await worker.stop()
        await close_deps(deps)
    return cpu_s / count * 1e6, polled / count


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = Target.from_env()
    await prepare(target)
    print(f"enqueue stream: {args.jobs} select_channel jobs per run, database {target.database}", flush=True)
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.before is not None:
        trees.append((f"before ({args.before.name})", args.before))
    for rate in args.rates:
        for name, source in trees:
            cpu_us, per_job = await measure(target, rate, args.jobs, source)
            line = f"worker CPU {cpu_us:5.0f} us/job, polls {per_job:.2f}/job"
            print(f"  {rate:5.0f}/s  {name:<24} {line}", flush=True)
    return 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 400.0])
    parser.add_argument("--before", type=Path, help="also an earlier tree's worker (bench.through_worker)")
    return parser.parse_args()


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
