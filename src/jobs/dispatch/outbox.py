"""The dispatch outbox: a batch's jobs are committed with its journey rows, then enqueued, then deleted.

One outbox row holds a whole batch, encoded as the bulk-enqueue script takes it
(src/redis_io/job_writer.py). A dispatcher killed between its commit and its enqueue leaves the row; the
next dispatch of the tenant (or any "ALL" fan-out) relays rows older than OUTBOX_RELAY_GRACE_S.
Enqueueing is idempotent by job id, so a row relayed after its jobs went out (killed between enqueue and
delete) writes nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
from loguru import logger

from src.db import queries
from src.runtime import chaos
from src.runtime.deps import Deps

RELAY_BATCH = 50


def _now_ms(deps: Deps) -> int:
    return deps.clock.wall_ms(deps.clock())


async def publish(deps: Deps, conn: asyncpg.Connection, outbox_id: int, batch: bytes) -> list[bool] | None:
    """Enqueue the batch a dispatch just committed, then delete its row; per job, True when this call
    wrote it. None when a relay holds the row: that relay enqueues it."""
    async with conn.transaction():
        if not await queries.take_outbox(conn, outbox_id=outbox_id):
            return None
        written = await deps.job_writer.enqueue_batch(batch, now_ms=_now_ms(deps))
        await chaos.pause(deps.config, "after_enqueue")
    return written


async def relay_orphans(deps: Deps, *, tenant_id: UUID | None) -> int:
    """Enqueue the batches left by dispatchers that died after committing; returns how many jobs."""
    cutoff = deps.clock() - timedelta(seconds=deps.config.outbox_relay_grace_s)
    relayed = 0
    async with deps.pg.acquire() as conn:
        while True:
            async with conn.transaction():
                rows = await queries.claim_orphaned_outbox(
                    conn, cutoff=cutoff, limit=RELAY_BATCH, tenant_id=tenant_id
                )
                for row in rows:
                    relayed += await _relay(deps, conn, row)
            if len(rows) < RELAY_BATCH:
                return relayed


async def _relay(deps: Deps, conn: asyncpg.Connection, row: queries.OutboxRow) -> int:
    written = await deps.job_writer.enqueue_batch(row.jobs, now_ms=_now_ms(deps))
    await chaos.pause(deps.config, "after_enqueue")
    await queries.delete_outbox(conn, outbox_id=row.id)
    logger.warning(
        "relayed {} jobs of dispatch {}, interrupted after its commit ({} written, {} already queued)",
        row.job_count,
        row.dispatch_job_id,
        sum(written),
        len(written) - sum(written),
    )
    return row.job_count
