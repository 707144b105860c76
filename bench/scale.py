"""Dispatch tick time at 10k, 100k and 1M journeys: the due-lead selection must not grow with the table.

    .venv/bin/python -m bench.scale                 # 10k, 100k, 1M journeys
    .venv/bin/python -m bench.scale --quick         # 10k, 100k
    .venv/bin/python -m bench.scale --explain       # also EXPLAIN (ANALYZE, BUFFERS) of the selection
    .venv/bin/python -m bench.scale --regenerate    # rebuild the data even if it is there

One PostgreSQL database per size (cerniq_bench_scale_10k, _100k, _1m), each migrated with the real
migrations and filled with COPY (asyncpg's copy_records_to_table) the first time; later runs find the
data (a marker table records size, seed and generator version) and only put the measured tenant's due
leads back as they were. The data is what a live table looks like:
- 8 tenants with 50 phones each; the journeys are spread over them;
- most journeys are not due: about 75% scheduled later (next_action_at up to 60 days ahead), 20% in
  other stages (WARM_REPLY, NEGOTIATION, CONVERTED, DEAD, PAUSED), 5% held for human review;
  5% of the other tenants' journeys are due;
- the measured tenant has the same number of due leads (3,000, with the variety of
  bench/dispatch_throughput.py) at every size, so every size runs the same ticks over the same kind of
  leads; what grows is everything the selection must not read.

A tick is one call of the real job function `src.jobs.dispatch.dispatch` (batchSize 100, real Deps,
clock fixed at a Wednesday 10:00 in Bucharest) for the measured tenant: select, decide, reserve quota,
update the journeys, write and relay the outbox, enqueue. Ticks go round-robin over the three
databases (one warm-up tick each first), so machine noise falls on all sizes alike; each size's figure
is the median of its ticks. Target: median tick at 1M <= 1.5 x median tick at 10k.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvloop

from bench.common import (
    Target,
    TenantData,
    add_leads,
    add_suppressions,
    add_tenant,
    bench_deps,
    connect,
    prepare,
    verdict,
)
from src.db.queries import due_leads_statement
from src.domain.channels import normalize_phone
from src.jobs.dispatch import dispatch
from src.names import Queue
from src.runtime.deps import Deps, close_deps
from src.runtime.log import configure_logging
from tests.support.clock import OPEN_HOURS
from tests.support.jobs import job_ctx
from tests.support.services import TABLES

TARGET_RATIO = 1.5
GENERATOR_VERSION = 2  # 2: every lead has a lawful basis, 10,000 suppression entries (issue 11)
TENANTS = 8
DUE_LEADS = 3_000
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


@dataclass
class Database:
    label: str
    size: int
    target: Target
    tenant_id: Any = None
    deps: Deps | None = None
    ticks: list[float] | None = None


async def _populated(apg: asyncpg.Connection, size: int, seed: int) -> Any:
    exists = await apg.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL")
    if not exists:
        return None
    row = await apg.fetchrow("SELECT size, seed, version, tenant_id FROM bench_meta")
    if row and (row["size"], row["seed"], row["version"]) == (size, seed, GENERATOR_VERSION):
        return row["tenant_id"]
    return None


async def generate(db: Database, seed: int, regenerate: bool) -> None:
    await prepare(db.target)
    apg = await connect(db.target)
    try:
        if not regenerate and (tenant := await _populated(apg, db.size, seed)):
            db.tenant_id = tenant
            print(f"  {db.label}: data found in {db.target.database}", flush=True)
            return
        started = time.perf_counter()
        await apg.execute("DROP TABLE IF EXISTS bench_meta, bench_snapshot")
        await apg.execute(f"TRUNCATE {TABLES} CASCADE")
        rng = random.Random(seed)
        tenants: list[TenantData] = [
            await add_tenant(apg, rng, index=100 + n, phones=50, daily_limit=500) for n in range(TENANTS)
        ]
        measured = tenants[0]
        await add_leads(apg, rng, measured, DUE_LEADS, due_share=1.0, keep_ids=False)
        rest = db.size - DUE_LEADS
        per_tenant = rest // TENANTS
        for n, tenant in enumerate(tenants):
            count = per_tenant + (rest - per_tenant * TENANTS if n == 0 else 0)
            await add_leads(apg, rng, tenant, count, due_share=0.0 if n == 0 else 0.05, keep_ids=False)
        await add_suppressions(apg, seed + 1, measured.id, 10_000)
        await apg.execute("VACUUM ANALYZE")
        # The measured tenant's due leads as generated, to put back before every run.
        await apg.execute(
            "CREATE TABLE bench_snapshot (id uuid PRIMARY KEY, next_action_at timestamptz, "
            "assigned_phone_id uuid, assigned_at timestamptz, last_dispatched_at timestamptz, "
            "last_channel_used text)"
        )
        await apg.execute(
            """
            INSERT INTO bench_snapshot
            SELECT id, next_action_at, assigned_phone_id, assigned_at, last_dispatched_at, last_channel_used
            FROM gold_lead_journey
            WHERE tenant_id = $1 AND engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')
              AND NOT requires_human_review AND (next_action_at IS NULL OR next_action_at <= $2)
            """,
            measured.id,
            OPEN_HOURS,
        )
        await apg.execute("CREATE TABLE bench_meta (size int, seed int, version int, tenant_id uuid)")
        await apg.execute(
            "INSERT INTO bench_meta VALUES ($1, $2, $3, $4)", db.size, seed, GENERATOR_VERSION, measured.id
        )
        db.tenant_id = measured.id
        print(
            f"  {db.label}: generated {db.size:,} journeys in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    finally:
        await apg.close()


async def restore(db: Database) -> None:
    """Put the measured tenant's due leads back as generated; empty the outbox."""
    apg = await connect(db.target)
    try:
        await apg.execute(
            """
            UPDATE gold_lead_journey j SET next_action_at = s.next_action_at,
                   assigned_phone_id = s.assigned_phone_id, assigned_at = s.assigned_at,
                   last_dispatched_at = s.last_dispatched_at, last_channel_used = s.last_channel_used
            FROM bench_snapshot s
            WHERE j.id = s.id AND (j.next_action_at, j.assigned_phone_id, j.last_dispatched_at)
                  IS DISTINCT FROM (s.next_action_at, s.assigned_phone_id, s.last_dispatched_at)
            """
        )
        await apg.execute("DELETE FROM dispatch_outbox")
        await apg.execute("TRUNCATE outreach_messages")  # append-only: the evidence of earlier runs
        await apg.execute("VACUUM ANALYZE gold_lead_journey, dispatch_outbox")
    finally:
        await apg.close()


async def tick(db: Database, n: int) -> tuple[float, int]:
    assert db.deps is not None
    ctx = job_ctx(db.deps, job_id=f"bench-tick-{db.label}-{n}", queue=Queue.DISPATCH)
    payload = {"correlationId": "bench-scale", "tenantId": str(db.tenant_id), "batchSize": 100}
    started = time.perf_counter()
    result = await dispatch(ctx, payload)
    return time.perf_counter() - started, result["totalEligibleLeads"]


async def explain(db: Database) -> None:
    """The selection as dispatch runs it (lock, batch 100), planned for these values and as the generic
    plan a prepared statement may switch to after five runs; in a transaction rolled back, so the row
    locks are released and nothing changes."""
    prepared = due_leads_statement(None, False, True)
    values = f"'{db.tenant_id}', '{OPEN_HOURS.isoformat()}', 100"
    apg = await connect(db.target)
    try:
        await apg.execute(f"PREPARE due_leads (uuid, timestamptz, int) AS {prepared}")
        for mode, note in (("force_custom_plan", "custom plan"), ("force_generic_plan", "generic plan")):
            await apg.execute(f"SET plan_cache_mode = {mode}")
            transaction = apg.transaction()
            await transaction.start()
            try:
                plan = await apg.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE due_leads ({values})")
            finally:
                await transaction.rollback()
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the due-lead selection at {db.label} ({note}):")
            print("\n".join(row[0] for row in plan))
    finally:
        await apg.close()


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    labels = ["10k", "100k"] if args.quick else list(SIZES)
    base = Target.from_env()
    databases = [
        Database(label, SIZES[label], Target.from_env(database=f"{base.database}_scale_{label}"))
        for label in labels
    ]
    print(f"dispatch tick (batch 100) at {', '.join(labels)} journeys; {args.ticks} ticks per size")
    for db in databases:
        await generate(db, args.seed + db.size, args.regenerate)
        await restore(db)
    first = databases[0]
    redis_deps = await bench_deps(first.target)
    await redis_deps.redis.flushdb()
    await close_deps(redis_deps)
    for db in databases:
        db.deps = await bench_deps(db.target)
        db.ticks = []
    try:
        if args.explain:
            await explain(databases[-1])
        for db in databases:
            await tick(db, -1)  # warm-up: pool, prepared statements, caches
        for n in range(args.ticks):
            for db in databases:
                normalize_phone.cache_clear()
                seconds, leads = await tick(db, n)
                if leads != 100:
                    raise SystemExit(f"{db.label}: tick {n} selected {leads} leads, expected 100")
                assert db.ticks is not None
                db.ticks.append(seconds)
    finally:
        for db in databases:
            if db.deps is not None:
                await close_deps(db.deps)

    medians = {db.label: statistics.median(db.ticks or [0.0]) for db in databases}
    print("results:")
    for db in databases:
        ticks = sorted(db.ticks or [])
        print(
            f"  {db.label:>5} journeys ({db.size:>9,}): median tick {medians[db.label] * 1000:6.1f} ms "
            f"(min {ticks[0] * 1000:.1f}, max {ticks[-1] * 1000:.1f})"
        )
    largest = databases[-1].label
    ratio = medians[largest] / medians["10k"]
    print(
        f"  ratio {largest}/10k: {ratio:.2f}x   target <= {TARGET_RATIO}x"
        f"{'' if largest == '1m' else ' (the target is for 1M; --quick stops at 100k)'}   "
        f"{verdict(ratio <= TARGET_RATIO)}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ticks", type=int, default=25, help="measured ticks per size (3,000 due leads: <= 29)"
    )
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) at the largest size"
    )
    parser.add_argument("--regenerate", action="store_true", help="rebuild the data even if it is there")
    args = parser.parse_args(argv)
    if args.ticks > DUE_LEADS // 100 - 1:
        parser.error(f"--ticks must be at most {DUE_LEADS // 100 - 1}")
    return args


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
