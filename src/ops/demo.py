"""The demo of `make demo`: seed the demo tenant, start the real worker, dry run, dispatch, summarise.

scripts/demo.sh makes PostgreSQL and Redis reachable and migrates first; this module needs only
DATABASE_URL and REDIS_URL. It starts `arq src.worker.Settings` as a child process with the cron off (so
that no other tenant of that database is dispatched), enqueues through src.client like any ops script,
and stops the worker with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.config import Config
from src.contracts import DispatchResult
from src.db import queries
from src.domain.windows import zone
from src.names import ALL_QUEUES_HEALTH_KEY, EMAIL_COLD_QUEUE, EMAIL_WARM_QUEUE
from src.ops import dispatch_view, seed
from src.ops.queues import queued_jobs
from src.ops.render import table
from src.ops.services import OpsError, database, redacted, redis_client
from src.ops.status import PhoneQuota, local_time, phone_quotas

ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT_S = 30.0
RESULT_TIMEOUT_S = 30.0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="the demo flow on DATABASE_URL/REDIS_URL (`make demo` also brings the services up)",
        description="Reset and seed the demo tenant, start a worker process, run a dry run and a real "
        "dispatch through it, print what happened, stop the worker. The database must be migrated.",
    )
    parser.add_argument(
        "--worker-log", type=Path, default=None, help="where the worker's output goes (default: a temp file)"
    )
    parser.set_defaults(handler=run)


def say(text: str = "") -> None:
    print(text, flush=True)


async def run(args: argparse.Namespace, config: Config) -> int:
    say("Cerniq outreach workers: demo")
    say(f"  PostgreSQL  {redacted(config.database_url_sync_scheme)}")
    say(f"  Redis       {redacted(config.redis_url)}")
    async with database(config) as engine, redis_client(config) as client:
        return await _demo(engine, client, config, args.worker_log)


async def _demo(engine: AsyncEngine, client: OutreachClient, config: Config, log: Path | None) -> int:
    redis = client.redis
    tenant = seed.DEMO_TENANT_ID
    await seed.seed_demo(engine, redis, config, reset=True)
    say()
    say(f"1. Seeded the demo tenant {seed.DEMO_TENANT_NAME!r} ({tenant})")
    say(f"   {seed.WINDOW_NOTE}: the demo dispatches whenever it runs.")
    say(table(["COMPANY", "JUDET / LOCALITATE", "SITUATION"], _lead_rows(), indent="   "))
    before = await phone_quotas(engine, redis, now=datetime.now(UTC), tenant_id=tenant)

    say()
    with worker_process(log) as worker:
        await _wait_healthy(redis, worker)
        say(f"2. Started the worker: arq src.worker.Settings (pid {worker.pid}, cron off)")

        dry = await _dispatch(client, dry_run=True)
        untouched = await phone_quotas(engine, redis, now=datetime.now(UTC), tenant_id=tenant)
        same = [q.used for q in untouched] == [q.used for q in before]
        say()
        say("3. Dry run through the worker: the plan, nothing written")
        say(_indent(dispatch_view.counters(dry)))
        say(f"   quota counters unchanged: {'yes' if same else 'NO'}")

        real = await _dispatch(client, dry_run=False)
        say()
        say("4. Dispatch through the worker")
        say(_indent(dispatch_view.counters(real)))
        async with engine.connect() as conn:
            leads = await queries.tenant_leads(conn, tenant_id=tenant)
            recorded = await queries.count_messages(conn, tenant_id=tenant)
        say(_decision_table(real, leads, before))
        say(f"   evidence: {recorded} messages recorded with their lawful basis (cerniq-ops audit)")

        say()
        say("5. What landed in each queue (for the downstream senders)")
        say("   A WhatsApp job waits in its phone's queue until its scheduled time (tenant-local here): two")
        say("   messages of one phone at least wa_min_gap_s (60 s) apart, plus up to wa_jitter_s (60 s).")
        say(await _landed(redis, before))

        after = await phone_quotas(engine, redis, now=datetime.now(UTC), tenant_id=tenant)
        say()
        say(f"6. Each phone's quota today ({seed.DEMO_TIMEZONE}, {after[0].quota_date})")
        say(_quota_table(before, after))

        code = _stop(worker)
    say()
    say(f"7. Stopped the worker (SIGTERM): exit code {code}")
    return 0 if code == 0 else 1


def _lead_rows() -> list[tuple[str, str, str]]:
    return [(lead.company, f"{lead.judet} / {lead.localitate}", lead.situation) for lead in seed.LEADS]


async def _dispatch(client: OutreachClient, *, dry_run: bool) -> DispatchResult:
    job = await client.dispatch(
        tenant_id=seed.DEMO_TENANT_ID,
        correlation_id=f"demo-{'dry-run' if dry_run else 'dispatch'}",
        batch_size=100,
        dry_run=dry_run,
    )
    return await job.result(timeout=RESULT_TIMEOUT_S)


def _decision_table(
    result: DispatchResult, leads: Sequence[queries.LeadRow], phones: Sequence[PhoneQuota]
) -> str:
    decided = {d.lead_id: d for d in result.decisions}
    queues = {job.job_id: job.queue for job in result.jobs_created}
    numbers = {q.phone.id: q.phone.phone_number for q in phones}
    rows: list[tuple[str, str, str | None, str | None, str | None, str]] = []
    for lead in leads:
        decision = decided.get(lead.lead_id)
        if decision is None:
            rows.append((lead.denumire, _not_selected(lead), None, None, None, "not selected"))
            continue
        rows.append(
            (
                lead.denumire,
                decision.outcome,
                decision.channel.value if decision.channel else None,
                queues.get(decision.job_id or ""),
                numbers.get(decision.phone_id) if decision.phone_id else None,
                decision.reason,
            )
        )
    return table(["COMPANY", "OUTCOME", "CHANNEL", "QUEUE", "PHONE", "REASON"], rows, indent="   ")


def _not_selected(lead: queries.LeadRow) -> str:
    """Why a lead of the tenant is not in the batch: an objection takes it out of the due set for good."""
    if lead.objected_at is not None:
        return "OBJECTED"
    return "HELD_FOR_REVIEW" if lead.requires_human_review else "NOT_DUE"


async def _landed(redis: Redis, phones: Sequence[PhoneQuota]) -> str:
    lines = []
    names = [q.queue for q in phones] + [q.followup_queue for q in phones]
    for queue in [*names, EMAIL_COLD_QUEUE, EMAIL_WARM_QUEUE]:
        jobs = [
            job
            for job in await queued_jobs(redis, queue)
            if job.payload.get("tenantId") == str(seed.DEMO_TENANT_ID)
        ]
        if not jobs:
            continue
        lines.append(f"   {queue}: {len(jobs)} job{'s' if len(jobs) > 1 else ''}")
        for job in jobs:
            company = (job.payload.get("personalization") or {}).get("companyName", "?")
            recipient = job.payload.get("recipientPhone") or job.payload.get("recipientEmail")
            lines.append(f"     {job.function}  {company} -> {recipient}{_scheduled(job.payload)}")
    return "\n".join(lines) or "   (nothing)"


def _scheduled(payload: dict[str, Any]) -> str:
    """When a paced WhatsApp message goes out (its `scheduledAt`), on the demo tenant's wall clock."""
    at = payload.get("scheduledAt")
    if not isinstance(at, str):
        return ""
    return f"  scheduled {datetime.fromisoformat(at).astimezone(zone(seed.DEMO_TIMEZONE)):%H:%M:%S}"


def _quota_table(before: Sequence[PhoneQuota], after: Sequence[PhoneQuota]) -> str:
    """LIMIT is today's effective limit: less than the daily limit while a number warms up."""
    used_before = {q.phone.id: q.used for q in before}
    return table(
        ["PHONE", "QUEUE", "STATUS", "USED BEFORE", "USED NOW", "LIMIT", "LEFT", "WARM-UP", "NEXT SLOT"],
        [
            (
                q.phone.phone_number,
                q.queue,
                q.phone.status,
                used_before.get(q.phone.id, 0),
                q.used,
                q.limit,
                q.remaining,
                q.warmup_note,
                local_time(q),
            )
            for q in after
        ],
        indent="   ",
    )


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


# ------------------------------------------------------------------ the worker process


@contextmanager
def worker_process(log: Path | None) -> Iterator[subprocess.Popen[bytes]]:
    """`arq src.worker.Settings` as a child; killed if the demo fails before stopping it."""
    env = {**os.environ, "DISPATCH_CRON_ENABLED": "false"}
    target = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "arq", "src.worker.Settings"],
        cwd=ROOT,
        env=env,
        stdout=target,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if log:
            target.close()  # type: ignore[union-attr]


async def _wait_healthy(redis: Redis, worker: subprocess.Popen[bytes]) -> None:
    if await redis.exists(ALL_QUEUES_HEALTH_KEY):
        say("   note: another worker already serves this Redis; it may run some of the demo's jobs")
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise OpsError(f"the worker exited with code {worker.returncode} while starting (see its log)")
        if await redis.exists(ALL_QUEUES_HEALTH_KEY):
            return
        await asyncio.sleep(0.1)
    raise OpsError(f"the worker was not healthy after {WORKER_START_TIMEOUT_S:.0f}s (see its log)")


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.wait(timeout=10)
