"""The dispatch outbox: jobs are committed with the journey rows, then enqueued, then deleted.

A dispatcher killed between its commit and its enqueue leaves rows here; the next dispatch of the tenant
(or any "ALL" fan-out) relays rows older than OUTBOX_RELAY_GRACE_S. Enqueueing is idempotent by job id,
so a row relayed twice (killed between enqueue and delete) is written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from uuid import UUID

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection

from src import chaos
from src.db import queries
from src.deps import Deps
from src.outbound import EncodedJob, OutgoingJob
from src.serialization import loads

RELAY_BATCH = 1000


async def _enqueue_and_delete(
    deps: Deps, conn: AsyncConnection, rows: Sequence[queries.OutboxRow]
) -> list[bool]:
    jobs = [OutgoingJob(r.job_id, r.queue_name, r.function_name, loads(r.payload)) for r in rows]
    written = await deps.outbound.enqueue(jobs, now_ms=int(deps.clock().timestamp() * 1000))
    await chaos.pause(deps.settings, "after_enqueue")
    await queries.delete_outbox(conn, ids=[r.id for r in rows])
    await conn.commit()
    return written


async def publish(deps: Deps, outbox_ids: Sequence[int], jobs: Mapping[str, EncodedJob]) -> dict[str, bool]:
    """Enqueue the rows a dispatch just committed; job id -> True when this call wrote the job.

    `jobs` are the rows' jobs as the dispatch serialized them, by job id, so the rows are not read back.
    Rows another relay holds are skipped here: that relay enqueues them.
    """
    if not outbox_ids:
        return {}
    async with deps.engine.connect() as conn:
        taken = [jobs[job_id] for job_id in await queries.take_outbox(conn, ids=outbox_ids)]
        written = await deps.outbound.enqueue_encoded(taken, now_ms=int(deps.clock().timestamp() * 1000))
        await chaos.pause(deps.settings, "after_enqueue")
        await conn.commit()
    return {job.job_id: flag for job, flag in zip(taken, written, strict=True)}


async def relay_orphans(deps: Deps, *, tenant_id: UUID | None) -> int:
    """Enqueue rows left by dispatchers that died after committing; returns how many were relayed."""
    cutoff = deps.clock() - timedelta(seconds=deps.settings.outbox_relay_grace_s)
    relayed = 0
    async with deps.engine.connect() as conn:
        while rows := await queries.claim_orphaned_outbox(
            conn, cutoff=cutoff, limit=RELAY_BATCH, tenant_id=tenant_id
        ):
            written = await _enqueue_and_delete(deps, conn, rows)
            relayed += len(rows)
            logger.warning(
                "relayed {} outbox jobs left by an interrupted dispatch ({} written, {} already queued)",
                len(rows),
                sum(written),
                len(rows) - sum(written),
            )
            if len(rows) < RELAY_BATCH:
                break
    return relayed
