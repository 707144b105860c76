"""One queue's arq worker, as `arq src.worker.<Queue>Settings` runs it, for bench/per_lead_jobs.py.

    python -m bench.worker_process --queue selector --report FILE [--noop | --floor PG,REDIS | --skeleton]
        [--profile FILE]

Same process model as the per-queue Settings of src/worker.py: a uvloop event loop, one arq Worker built
from `src.worker.worker_options(queue, settings)` (the project's max_jobs, poll_delay, timeouts, JSON
serializer, keep_result, on_job_start hook), logging configured by `configure_logging`, Deps built once
in on_startup, then the start-up heap frozen. Settings come from the environment (DATABASE_URL,
REDIS_URL), as for the real worker.

The worker runs in burst mode (it exits when its queue is empty) and writes a JSON report to the file
--report names: jobs complete and failed, the seconds from the first job's start to the last one's end,
the CPU time in between, and the process's peak RSS. bench/per_lead_jobs.py starts it as a
tests/support WorkerProcess, which keeps the process's output (its log) apart from that report.

With --noop the queue's job function is replaced by one that does nothing, under the same name,
timeout and retry settings: the baseline of arq's own cost on the same worker. With --floor PG,REDIS it
is replaced by one that makes only round trips: PG times `SELECT 1` on a connection from the job's pool,
each acquired and released as the jobs do, then REDIS times a GET: what a job with that many round trips
costs at the least, whatever else it does.

With --skeleton it is replaced by the least any implementation of that job in this service does: the
project's job wrapper (src/jobs/base.py: the input parsed by its contract model, so bad input names its
field; the deadline; the retry mapping; the log context and metrics) around the job's own statements,
sent as the job sends them, and an empty result. select_channel's and allocate_phone's rows are left
undecoded; route's is decoded and put through the law's gate (src/domain/lead_gate.py), because whether
it writes depends on it: a Redis GET stands for its reservation script, and the message's evidence row
is written as the job writes it. No decision, no timing or pacing, no job to build, no result: what is
left of a target's allowance beyond the skeleton's cost is all the job's own logic may take.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from arq.worker import Worker, func

from src.config import get_config
from src.contracts import Channel, ChannelSelectionJobData, PhoneAllocationJobData, RouterJobData
from src.db import queries
from src.db.queries import lead_jobs
from src.domain.lead_gate import whatsapp_refusal
from src.jobs.base import JobCoroutine, JobInfo, job
from src.names import Function, Queue, routed_job_id, whatsapp_queue
from src.results import Wire
from src.runtime.deps import Deps, build_deps, close_deps
from src.runtime.log import configure_logging
from src.runtime.queues import freeze_startup_heap, worker_options

QUEUES = {
    "dispatch": Queue.DISPATCH,
    "router": Queue.ROUTER,
    "allocator": Queue.ALLOCATOR,
    "selector": Queue.SELECTOR,
}


async def noop(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {}


def round_trips(pg: int, redis: int) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A job that only makes `pg` PostgreSQL and `redis` Redis round trips, the smallest there are."""

    async def floor(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        deps = ctx["deps"]
        for _ in range(pg):
            async with deps.pg.acquire() as conn:
                await conn.fetchval("SELECT 1")
        for _ in range(redis):
            await deps.redis.get("bench:floor")
        return {}

    return floor


@job(Function.SELECT_CHANNEL, ChannelSelectionJobData)
async def select_skeleton(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> Wire:
    """select_channel's one statement (queries.channel_context), the row left undecoded."""
    async with deps.pg.acquire() as conn:
        await conn.fetchrow(lead_jobs._CHANNEL_CONTEXT, data.tenant_id, data.lead_id)
    return {}


@job(Function.ALLOCATE_PHONE, PhoneAllocationJobData)
async def allocate_skeleton(deps: Deps, data: PhoneAllocationJobData, info: JobInfo) -> Wire:
    """allocate_phone's statement (queries.allocation_context) and its read of one phone's counter (the
    job reads the sticky phone's alone when it keeps it, every available phone's otherwise); no write."""
    async with deps.pg.acquire() as conn:
        row = await conn.fetchrow(
            lead_jobs._ALLOCATION_CONTEXT, data.tenant_id, data.lead_id, data.prefer_existing
        )
        phone = row["assigned_phone_id"] or row["ids"][0]
        await deps.quota.used([phone], deps.clock().date())
    return {}


@job(Function.ROUTE, RouterJobData)
async def route_skeleton(deps: Deps, data: RouterJobData, info: JobInfo) -> Wire:
    """route's read (queries.route_context) and the law's gate; for a lead the gate lets through, the
    least Redis round trip in place of its reservation script, and its evidence row."""
    async with deps.pg.acquire() as conn:
        lead = await queries.route_context(
            conn, tenant_id=data.tenant_id, lead_id=data.lead_id, phone_id=data.phone_id
        )
    if lead is None or lead.phone is None or whatsapp_refusal(lead.standing) is not None:
        return {}
    await deps.redis.get("bench:skeleton")
    record = queries.MessageRecord(
        tenant_id=lead.tenant.id,
        lead_id=data.lead_id,
        channel=Channel.WHATSAPP.value,
        phone_id=lead.phone.id,
        queue=whatsapp_queue(lead.phone.queue_slot),
        job_id=routed_job_id(info.job_id),
        basis=lead.standing.lawful.bases.whatsapp,
        scheduled_at=deps.clock(),
    )
    async with deps.pg.acquire() as conn:
        await queries.record_routed_message(conn, record=record)
    return {}


SKELETONS: dict[Queue, JobCoroutine] = {
    Queue.SELECTOR: select_skeleton,
    Queue.ALLOCATOR: allocate_skeleton,
    Queue.ROUTER: route_skeleton,
}


def build_worker(
    queue: Queue,
    *,
    use_noop: bool,
    stamps: dict[str, float],
    floor: tuple[int, int] | None = None,
    skeleton: bool = False,
) -> Worker:
    settings = get_config()
    options = worker_options(queue, settings)
    body = SKELETONS[queue] if skeleton else round_trips(*floor) if floor else noop if use_noop else None
    if body is not None:
        options["functions"] = [
            func(body, name=f.name, timeout=f.timeout_s, keep_result=f.keep_result_s, max_tries=f.max_tries)
            for f in options["functions"]
        ]
    on_job_start = options["on_job_start"]

    async def startup(ctx: dict[str, Any]) -> None:
        configure_logging(settings.log_level, settings.log_format)
        ctx["queue"] = queue.value
        ctx["deps"] = await build_deps(settings)
        freeze_startup_heap()

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "deps" in ctx:
            await close_deps(ctx.pop("deps"))

    async def job_started(ctx: dict[str, Any]) -> None:
        if "first_start" not in stamps:
            stamps["first_start"] = time.perf_counter()
            stamps["cpu_at_start"] = time.process_time()
        await on_job_start(ctx)

    async def job_ended(ctx: dict[str, Any]) -> None:
        stamps["last_end"] = time.perf_counter()
        stamps["cpu_at_end"] = time.process_time()

    options |= {
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": job_started,
        "after_job_end": job_ended,
        "cron_jobs": [],
        "burst": True,
    }
    return Worker(**options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queue", choices=sorted(QUEUES), required=True)
    parser.add_argument("--noop", action="store_true")
    parser.add_argument("--floor", help="PG,REDIS: a job of only that many round trips")
    parser.add_argument("--skeleton", action="store_true", help="the job's wrapper and statements alone")
    parser.add_argument("--report", required=True, help="write the JSON report of the run to this file")
    parser.add_argument("--profile", help="write a pyinstrument profile of the run to this file")
    args = parser.parse_args()

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    stamps: dict[str, float] = {}
    floor = None
    if args.floor:
        pg, redis = (int(n) for n in args.floor.split(","))
        floor = (pg, redis)
    worker = build_worker(
        QUEUES[args.queue], use_noop=args.noop, stamps=stamps, floor=floor, skeleton=args.skeleton
    )
    profiler: Any = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    worker.run()
    if profiler is not None:
        profiler.stop()
        with open(args.profile, "w") as out:
            out.write(profiler.output_text(unicode=True, color=False, show_all=False))
    report = {
        "jobs": worker.jobs_complete,
        "failed": worker.jobs_failed,
        "retried": worker.jobs_retried,
        "seconds": stamps.get("last_end", 0.0) - stamps.get("first_start", 0.0),
        "cpu_seconds": stamps.get("cpu_at_end", 0.0) - stamps.get("cpu_at_start", 0.0),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    with open(args.report, "w") as out:
        out.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
