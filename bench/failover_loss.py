"""What a Redis failover loses, with REDIS_MIN_REPLICA_ACKS=0 and with 1.

    .venv/bin/python -m bench.failover_loss                       # 3 runs each way, the replica cut off 1 s
    .venv/bin/python -m bench.failover_loss --acks 0 --runs 5 --lag 0   # only the gap replication leaves

The scenario is the failover test's (tests/e2e/failure/test_failover.py, tests/support/failover.py): a
primary, a replica and three sentinels of its own on loopback ports; three worker processes on
`redis+sentinel://` under dispatch and route jobs; a sender taking the messages off their queues; the
primary SIGKILLed (right after the replica was cut off for `--lag` seconds, so that the primary dies
holding writes the replica never got; 0 leaves only the natural replication gap), the replica promoted,
the old primary back as its replica; the load goes on until the quota is used up, then every job
completes.
Each run prints the failover's timings and what was lost, counted from PostgreSQL, the new primary and
what was sent. Worker processes run on the host clock, against BENCH_DATABASE_URL (emptied).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime

import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import Target, prepare
from src.domain.quota import quota_date
from src.runtime.log import configure_logging
from tests.support.factories import Factory
from tests.support.failover import Report, Shape, run_failover
from tests.support.sentinel import SentinelTopology
from tests.support.services import TABLES
from tests.support.workers import Workers


async def one_run(target: Target, acks: int, shape: Shape) -> Report:
    engine = create_async_engine(target.database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    topology = SentinelTopology(replicas=1)
    workers = Workers(target.env())
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
        await topology.start()
        day = quota_date(datetime.now(UTC), "Europe/Bucharest")
        return await run_failover(topology, workers, Factory(engine), engine, day, acks=acks, shape=shape)
    finally:
        workers.close()
        topology.close()
        await engine.dispose()


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = Target.from_env()
    await prepare(target)
    shape = replace(
        Shape(),
        lag_s=args.lag,
        dispatches_per_s=args.dispatches_per_s,
        routes_per_s=args.routes_per_s,
        daily_limit=args.daily_limit,
    )
    print(
        f"failover loss: {args.runs} run(s) per setting, replica lag {args.lag}s, database {target.database}"
    )
    lost_runs: dict[int, int] = {}
    for acks in args.acks:
        lost_runs[acks] = 0
        for run in range(1, args.runs + 1):
            report = await one_run(target, acks, shape)
            lost = {name: value for name, value in report.tally.violations().items() if value}
            lost_runs[acks] += bool(lost)
            print(f"  run {run}: {report.summary()}", flush=True)
            for name, value in lost.items():
                shown = value if isinstance(value, int) else f"{len(value)} ({_first(value)})"
                print(f"    LOST {name}: {shown}")
    for acks, runs in lost_runs.items():
        print(f"REDIS_MIN_REPLICA_ACKS={acks}: runs that lost something: {runs} of {args.runs}")
    return 0


def _first(value: list[str] | dict[str, tuple[int, int]]) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{phone}: {used} > {limit}" for phone, (used, limit) in list(value.items())[:3])
    return ", ".join(value[:3])


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--acks", type=int, nargs="+", default=[0, 1], help="REDIS_MIN_REPLICA_ACKS values")
    parser.add_argument(
        "--lag", type=float, default=Shape.lag_s, help="seconds the replica is cut off before the kill"
    )
    parser.add_argument("--dispatches-per-s", type=float, default=Shape.dispatches_per_s)
    parser.add_argument("--routes-per-s", type=float, default=Shape.routes_per_s)
    parser.add_argument("--daily-limit", type=int, default=Shape.daily_limit, help="of each of the 8 phones")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
