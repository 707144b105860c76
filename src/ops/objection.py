"""`object`: a lead's objection to direct marketing (GDPR art. 21), which stops it on every channel for good.

In order: the objection is committed (after any dispatch holding the lead's row has committed its batch);
the tenant's batches still on their way to the queues (dispatch_outbox) are enqueued, so that none of
them can bring the lead's message back later; then every message recorded for the lead
(outreach_messages) that still waits on its queue is withdrawn (src/redis_io/withdraw.py). A route job
that read the lead before the objection sees it when it records its message, and withdraws its own
(src/db/queries/evidence.py). Nothing else is touched: other leads, quota counters, reservations.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from src.config import Config
from src.db import queries
from src.db.queries.compliance import claim_tenant_outbox, record_objection
from src.ops import argtypes
from src.ops.render import print_json
from src.ops.services import OpsError, pg_connection, redis_client
from src.redis_io.job_writer import JobWriter
from src.redis_io.replicas import ReplicaAcks
from src.redis_io.withdraw import Waiting, Withdrawal, withdraw


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "object",
        help="record a lead's objection: no message to it again, on any channel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    parser.add_argument("--lead-id", required=True, type=argtypes.uuid)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    async with pg_connection(config) as conn, redis_client(config) as client:
        objected_at = await record_objection(
            conn, tenant_id=args.tenant_id, lead_id=args.lead_id, at=datetime.now(UTC)
        )
        if objected_at is None:
            raise OpsError(f"lead {args.lead_id} not found for tenant {args.tenant_id}")
        relayed = await _flush_outbox(conn, client.redis, args.tenant_id, config)
        messages = await queries.lead_messages(conn, tenant_id=args.tenant_id, lead_id=args.lead_id)
        outcomes = await withdraw(client.redis, [Waiting(m.job_id, m.queue) for m in messages])
    by_job = {m.job_id: outcome for m, outcome in zip(messages, outcomes, strict=True)}
    _report(args, objected_at, relayed, by_job)
    return 0


async def _flush_outbox(conn: asyncpg.Connection, redis: Redis, tenant_id: UUID, config: Config) -> int:
    """Enqueue the tenant's committed batches that no dispatch has published yet, and delete their rows:
    afterwards no batch committed before the objection can put one of the lead's messages on a queue.
    A relayed job that is already queued is not written twice; a row goes only once REDIS_MIN_REPLICA_ACKS
    replicas hold its jobs, as in dispatch. Returns how many jobs the rows held."""
    acks = ReplicaAcks.configured(redis, config)
    writer = JobWriter(redis, acks=acks)
    async with conn.transaction():
        rows = await claim_tenant_outbox(conn, tenant_id=tenant_id)
        for row in rows:
            await writer.enqueue_batch(row.jobs, now_ms=int(time.time() * 1000))
            await queries.delete_outbox(conn, outbox_id=row.id)
    return sum(row.job_count for row in rows)


def _report(args: argparse.Namespace, at: datetime, relayed: int, by_job: dict[str, Withdrawal]) -> None:
    if args.json:
        print_json(
            {
                "tenantId": str(args.tenant_id),
                "leadId": str(args.lead_id),
                "objectedAt": at.isoformat(),
                "relayedFromOutbox": relayed,
                "jobs": [{"jobId": job, "outcome": outcome.value} for job, outcome in by_job.items()],
            }
        )
        return
    print(
        f"lead {args.lead_id} of tenant {args.tenant_id} objected at {at.isoformat()}: no message to it again"
    )
    if relayed:
        print(f"  {relayed} jobs of the tenant's batches still on their way were enqueued first")
    withdrawn = [job for job, outcome in by_job.items() if outcome is Withdrawal.WITHDRAWN]
    running = [job for job, outcome in by_job.items() if outcome is Withdrawal.RUNNING]
    print(f"  {len(withdrawn)} waiting message(s) withdrawn" + "".join(f"\n    {job}" for job in withdrawn))
    if running:
        print(
            f"  {len(running)} being sent right now, too late to stop:"
            + "".join(f"\n    {j}" for j in running)
        )
    print(f"  {len(by_job) - len(withdrawn) - len(running)} recorded message(s) already sent or expired")
