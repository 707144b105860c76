"""What a job's PostgreSQL round trip costs the process, with the jobs' pool's fast path and without it.

    .venv/bin/python -m bench.job_pool            # 3,000 cycles per slice, 6 slices per variant
    .venv/bin/python -m bench.job_pool --quick    # 1,000 cycles, 2 slices

One cycle is what every job does for each statement group: acquire a connection with a timeout (inside a
job it always has one: what is left of its budget), run `SELECT 1`, release it. The pool is the jobs' own
(`src.runtime.deps.create_job_pool`); its fast path (src/runtime/job_pool.py) is switched off and on in
alternating slices, 1 and 20 cycles at once, and the figure is the median CPU time of this process per
cycle. For information: no target; the per-lead figures are bench/per_lead_jobs.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import uvloop

from bench.common import Target, bench_deps, prepare
from src.runtime.deps import close_deps
from src.runtime.job_pool import JobPool


async def cycles(pool: JobPool, count: int, at_once: int) -> float:
    """CPU seconds per cycle, `at_once` cycles at a time."""

    async def one() -> None:
        async with pool.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")

    started = time.process_time()
    for _ in range(0, count, at_once):
        await asyncio.gather(*(one() for _ in range(at_once)))
    return (time.process_time() - started) / count


async def main(args: argparse.Namespace) -> int:
    target = Target.from_env()
    await prepare(target)
    deps = await bench_deps(target)
    pool = deps.pg
    assert isinstance(pool, JobPool)
    figures: dict[tuple[bool, int], list[float]] = {}
    try:
        await cycles(pool, 500, 20)  # open the connections
        for _ in range(args.slices):
            for fast in (False, True):
                pool.fast_path = fast
                for at_once in (1, 20):
                    figures.setdefault((fast, at_once), []).append(await cycles(pool, args.cycles, at_once))
    finally:
        await close_deps(deps)
    print(f"jobs' pool: acquire + SELECT 1 + release, CPU of this process per cycle ({args.slices} slices)")
    for at_once in (1, 20):
        before, after = (statistics.median(figures[(fast, at_once)]) * 1e6 for fast in (False, True))
        print(
            f"  {at_once:>2} at once: asyncpg's path {before:5.0f} us, fast path {after:5.0f} us "
            f"({after / before:.2f})"
        )
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.slices = 1000, 2
    return args


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
