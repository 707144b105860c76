"""Per-lead jobs through a real arq worker: select_channel, allocate_phone and route against a no-op job.

    .venv/bin/python -m bench.per_lead_jobs            # 4,000 jobs per kind, 3 rounds
    .venv/bin/python -m bench.per_lead_jobs --quick    # 1,500 jobs per kind, 1 round
    .venv/bin/python -m bench.per_lead_jobs --profile  # also pyinstrument profiles of the workers

Each measurement starts a worker process (bench/worker_process.py: the per-queue process model of
`arq src.worker.<Queue>Settings`, with the project's worker options: max_jobs 50, poll_delay, JSON
serializer, keep_result, timeouts, logging at INFO to a file) in burst mode over a queue that already
holds N jobs, and takes N / (last job end - first job start). The no-op baseline runs the same worker
with the job function replaced by one that does nothing under the same name, on the same N jobs: what
arq itself costs per job on this machine. Targets (the median over rounds of each round's share of the
no-op rate): select_channel >= 80%, allocate_phone and route >= 70%.

The floor of each kind runs the same worker with a job that makes only the round trips that kind cannot
do without (FLOOR; bench/worker_process.py --floor) and nothing else: its share of the no-op rate is the
most any implementation of that job with those round trips can reach on this stack (arq, redis-py,
asyncpg, one process). A target above its floor cannot be met by tuning the job. The worker is bound by
its CPU (the no-op too), so each target is also an allowance of CPU per job beyond the no-op's
(no-op / target - no-op), printed beside what the job and its floor took beyond it; bench/job_cpu.py
splits each job's CPU, in-process, into its round trips and the rest.

The skeleton of each kind (bench/worker_process.py --skeleton) is the least any implementation of that
job in this service does: the project's job wrapper around the job's own statements (route's put through
the law's gate, which decides whether it writes), no decision and an empty result. Its share of the no-op
rate is the most such a job can reach; its CPU beyond the no-op's, against the target's allowance,
leaves what the job's own logic (the lawful-basis and suppression checks, the decision, the result) may
take at most.

Data: one tenant, 2,000 leads with the variety of bench/dispatch_throughput.py, 50 phones (4 of them
unavailable, so some routes are rerouted). Jobs pick leads at random (a lead may come twice; the first
allocation of a lead writes its sticky phone, later ones find it); routes use the lead's sticky phone or
a random one of the tenant. The tables and Redis database are regenerated before every measurement.

Memory: the peak RSS of each worker process (psutil, sampled every 20 ms, and the process's own
ru_maxrss), and of the real all-in-one process `arq src.worker.Settings` while it serves all three jobs
at once. Target: <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import uvloop

from bench.common import (
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
from src.names import QUEUE_OF, Function
from src.redis_io.job_writer import OutgoingJob
from src.runtime.deps import close_deps
from src.runtime.log import configure_logging
from tests.support.services import ROOT
from tests.support.workers import WorkerProcess

# Each job's rate as a share of the no-op job's on the same worker (issue 12).
TARGET_SHARE = {Function.SELECT_CHANNEL: 0.80, Function.ALLOCATE_PHONE: 0.70, Function.ROUTE: 0.70}
TARGET_RSS_MB = 150
# The round trips each job cannot do without (PostgreSQL, Redis): select_channel reads its lead;
# allocate_phone reads its lead and the phones' counters; route reads its lead, reserves and enqueues in
# one script, and writes the message's evidence row after the enqueue. A job of only those round trips is
# the most that job can reach.
FLOOR = {Function.SELECT_CHANNEL: (1, 0), Function.ALLOCATE_PHONE: (1, 1), Function.ROUTE: (2, 1)}
KINDS = {
    Function.SELECT_CHANNEL: "selector",
    Function.ALLOCATE_PHONE: "allocator",
    Function.ROUTE: "router",
}


@dataclass(frozen=True)
class Scenario:
    tenant: TenantData
    sticky: dict[UUID, UUID | None]


@dataclass(frozen=True)
class Measured:
    jobs: int
    failed: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # the worker's CPU between its first job's start and its last job's end

    @property
    def cpu_us_per_job(self) -> float:
        return self.cpu_seconds / self.jobs * 1e6 if self.jobs else 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


async def populate(target: Target, *, seed: int, leads: int, phones: int = 50) -> Scenario:
    apg = await connect(target)
    deps = await bench_deps(target)
    try:
        await reset(apg, deps.redis)
        rng = random.Random(seed)
        tenant = await add_tenant(apg, rng, index=0, phones=phones, daily_limit=1_000_000)
        await add_leads(apg, rng, tenant, leads)
        await apg.execute("VACUUM ANALYZE gold_lead_journey, gold_companies, wa_phone_numbers")
        rows = await apg.fetch("SELECT lead_id, assigned_phone_id FROM gold_lead_journey")
    finally:
        await apg.close()
        await close_deps(deps)
    return Scenario(tenant, {row["lead_id"]: row["assigned_phone_id"] for row in rows})


def jobs_for(function: Function, scenario: Scenario, count: int, seed: int) -> list[OutgoingJob]:
    rng = random.Random(seed)
    tenant = scenario.tenant
    jobs = []
    for n in range(count):
        lead = rng.choice(tenant.lead_ids)
        payload: dict[str, Any] = {
            "tenantId": str(tenant.id),
            "leadId": str(lead),
            "correlationId": f"bench-{n}",
        }
        if function is Function.ROUTE:
            phone = scenario.sticky[lead] or rng.choice(tenant.phones).id
            payload |= {
                "phoneId": str(phone),
                "messageType": rng.choice(("INITIAL", "FOLLOWUP")),
                "payload": {"text": "Bună ziua, revin cu oferta discutată.", "templateId": "agro-2026-03"},
            }
        jobs.append(OutgoingJob(f"bench:{function}:{n}", QUEUE_OF[function], function, payload))
    return jobs


async def enqueue(target: Target, jobs: list[OutgoingJob]) -> None:
    deps = await bench_deps(target)
    try:
        for start in range(0, len(jobs), 1000):
            await deps.job_writer.enqueue(jobs[start : start + 1000], now_ms=int(time.time() * 1000))
    finally:
        await close_deps(deps)


def _sample_rss(worker: WorkerProcess, peak: float) -> float:
    try:
        return max(peak, psutil.Process(worker.pid).memory_info().rss / 2**20)
    except psutil.NoSuchProcess:
        return peak


async def run_worker(
    target: Target,
    queue: str,
    *,
    noop: bool,
    profile: Path | None,
    floor: tuple[int, int] | None = None,
    skeleton: bool = False,
) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        report_path = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "bench.worker_process",
            "--queue",
            queue,
            "--report",
            str(report_path),
        ]
        if noop:
            command.append("--noop")
        if floor is not None:
            command += ["--floor", f"{floor[0]},{floor[1]}"]
        if skeleton:
            command.append("--skeleton")
        if profile is not None:
            command += ["--profile", str(profile)]
        worker = WorkerProcess(command, env=target.env(LOG_LEVEL="INFO")).start()
        try:
            peak = 0.0
            while worker.running:
                peak = _sample_rss(worker, peak)
                await asyncio.sleep(0.02)
            if code := await worker.wait_exit():
                sys.exit(f"worker for {queue} exited with {code}:\n{worker.output()[-3000:]}")
            report = json.loads(report_path.read_text())
        finally:
            worker.close()
    peak = max(peak, report["peak_rss_kb"] / 1024)
    return Measured(report["jobs"], report["failed"], report["seconds"], peak, report["cpu_seconds"])


async def measure(
    target: Target,
    function: Function,
    args: argparse.Namespace,
    *,
    noop: bool,
    round_no: int,
    floor: bool = False,
    skeleton: bool = False,
) -> Measured:
    scenario = await populate(target, seed=args.seed, leads=args.leads)
    await enqueue(target, jobs_for(function, scenario, args.jobs, seed=args.seed + round_no))
    profile = None
    if args.profile and round_no == 0 and not floor and not skeleton:
        profile = ROOT / "bench" / "results" / f"profile-{function}{'-noop' if noop else ''}.txt"
        profile.parent.mkdir(exist_ok=True)
    measured = await run_worker(
        target,
        KINDS[function],
        noop=noop,
        profile=profile,
        floor=FLOOR[function] if floor else None,
        skeleton=skeleton,
    )
    if measured.jobs != args.jobs or measured.failed:
        sys.exit(f"{function}: {measured.jobs} jobs complete, {measured.failed} failed, {args.jobs} expected")
    return measured


async def all_queues_process(target: Target, args: argparse.Namespace) -> tuple[float, float, int]:
    """The real `arq src.worker.Settings` serving all three per-lead jobs at once: (peak RSS MB, jobs/s)."""
    scenario = await populate(target, seed=args.seed, leads=args.leads)
    jobs = [job for f in KINDS for job in jobs_for(f, scenario, args.jobs, seed=args.seed)]
    env = target.env(LOG_LEVEL="INFO", DISPATCH_CRON_ENABLED="false", HEALTH_CHECK_INTERVAL_S="5")
    deps = await bench_deps(target)
    worker = WorkerProcess.arq("Settings", env=env).start()
    try:
        peak = 0.0
        deadline = time.monotonic() + 30
        while not await worker.healthy(deps.redis):
            if time.monotonic() > deadline:
                sys.exit(f"arq src.worker.Settings did not become healthy:\n{worker.output()[-3000:]}")
            peak = _sample_rss(worker, peak)
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        await enqueue(target, jobs)
        queues = [QUEUE_OF[f] for f in KINDS]
        while sum([await deps.redis.zcard(q) for q in queues]) or await _in_progress(deps):
            peak = _sample_rss(worker, peak)
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
        peak = _sample_rss(worker, peak)
    finally:
        await worker.stop()
        await close_deps(deps)
    return peak, len(jobs) / seconds, len(jobs)


async def _in_progress(deps: Any) -> bool:
    async for _ in deps.redis.scan_iter(match="arq:in-progress:bench:*", count=1000):
        return True
    return False


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = Target.from_env()
    await prepare(target)
    print(
        f"per-lead jobs through a real arq worker: {args.jobs} jobs per kind, {args.rounds} round(s), "
        f"max_jobs 50, database {target.database}"
    )
    rates: dict[str, list[float]] = {"noop": []} | {str(f): [] for f in KINDS}
    shares: dict[str, list[float]] = {str(f): [] for f in KINDS}
    floors: dict[str, list[float]] = {str(f): [] for f in KINDS}
    skeletons: dict[str, list[float]] = {str(f): [] for f in KINDS}
    # CPU per job beyond the no-op's in the same round: (the target's allowance, the job's, its floor's,
    # its skeleton's)
    beyond: dict[str, list[tuple[float, float, float, float]]] = {str(f): [] for f in KINDS}
    peaks: list[float] = []
    for round_no in range(args.rounds):
        results: dict[str, Measured] = {}
        for function in KINDS:
            noop = await measure(target, function, args, noop=True, round_no=round_no)
            job = await measure(target, function, args, noop=False, round_no=round_no)
            floor = await measure(target, function, args, noop=False, round_no=round_no, floor=True)
            floors[str(function)].append(floor.rate / noop.rate)
            skeleton = await measure(target, function, args, noop=False, round_no=round_no, skeleton=True)
            skeletons[str(function)].append(skeleton.rate / noop.rate)
            rates["noop"].append(noop.rate)
            rates[str(function)].append(job.rate)
            shares[str(function)].append(job.rate / noop.rate)
            base = noop.cpu_us_per_job
            beyond[str(function)].append(
                (
                    base / TARGET_SHARE[function] - base,
                    job.cpu_us_per_job - base,
                    floor.cpu_us_per_job - base,
                    skeleton.cpu_us_per_job - base,
                )
            )
            peaks += [noop.peak_rss_mb, job.peak_rss_mb]
            results[str(function)] = job
            print(
                f"  round {round_no + 1} {function:<15} {job.rate:7.0f} jobs/s, no-op on the same worker "
                f"{noop.rate:7.0f} jobs/s: {job.rate / noop.rate:5.0%}   (CPU per job "
                f"{job.cpu_us_per_job:.0f} vs {noop.cpu_us_per_job:.0f} us, "
                f"peak RSS {job.peak_rss_mb:.0f} MB); its round trips alone "
                f"{floor.rate / noop.rate:5.0%} (CPU {floor.cpu_us_per_job:.0f} us); its skeleton "
                f"{skeleton.rate / noop.rate:5.0%} (CPU {skeleton.cpu_us_per_job:.0f} us)",
                flush=True,
            )
    rss_all, rate_all, count_all = await all_queues_process(target, args)

    ok = True
    print("results (median over rounds):")
    print(f"  {'no-op job':<15} {statistics.median(rates['noop']):7.0f} jobs/s")
    for function in KINDS:
        share = statistics.median(shares[str(function)])
        goal = TARGET_SHARE[function]
        ok &= share >= goal
        pg, redis = FLOOR[function]
        print(
            f"  {function:<15} {statistics.median(rates[str(function)]):7.0f} jobs/s = {share:5.0%} of no-op"
            f"   target >= {goal:.0%}   {verdict(share >= goal)}   (a job of only its {pg} PostgreSQL and "
            f"{redis} Redis round trips: {statistics.median(floors[str(function)]):.0%})"
        )
        allowed, took, trips, bare = (
            statistics.median(part) for part in zip(*beyond[str(function)], strict=True)
        )
        print(
            f"  {'':<15} CPU per job beyond the no-op's: the target allows {allowed:.0f} us, the job took "
            f"{took:.0f}, its round trips alone {trips:.0f}"
        )
        print(
            f"  {'':<15} its skeleton (the job wrapper and its statements, nothing decided): "
            f"{statistics.median(skeletons[str(function)]):.0%} of no-op, {bare:.0f} us beyond it; "
            f"left for the job's own logic: {allowed - bare:.0f} us"
        )
    worst = max(*peaks, rss_all)
    ok &= worst <= TARGET_RSS_MB
    print(
        f"  arq src.worker.Settings (all queues, one process): {count_all} jobs at {rate_all:.0f} jobs/s, "
        f"peak RSS {rss_all:.0f} MB"
    )
    print(
        f"  worker peak RSS (largest of all runs): {worst:.0f} MB   target <= {TARGET_RSS_MB} MB   "
        f"{verdict(worst <= TARGET_RSS_MB)}"
    )
    return 0 if ok else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4000, help="jobs per kind and measurement")
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--quick", action="store_true", help="1,500 jobs per kind, one round")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profiles in bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.rounds = min(args.jobs, 1500), 1
    return args


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(uvloop.run(main(parse())))
