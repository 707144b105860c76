"""The dispatch outbox: a batch's jobs are committed with its journey rows, then enqueued, then deleted.

One outbox row holds a whole batch, encoded as the bulk-enqueue script takes it
(src/redis_io/job_writer.py). A dispatcher killed between its commit and its enqueue leaves the row, and
the row waits for no clock when nobody can still publish it:
- the killed job's own next try relays it first thing (arq runs one try of a job at a time, so the row
  of an earlier try with the same job id is that dead try's);
- the next dispatch of the tenant, or any "ALL" fan-out, relays it as soon as its job is provably dead:
  arq's in-progress key for the job id is gone (no worker runs it) and it does not run in this process;
- a row whose job may still be running waits OUTBOX_RELAY_GRACE_S, by the database's clock, before
  anyone else relays it (a job that hangs between commit and enqueue).
Enqueueing is idempotent by job id, so a row relayed after its jobs went out (killed between enqueue and
delete) writes nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from uuid import UUID

import asyncpg
from loguru import logger

from src.db import queries
from src.redis_io.arq_jobs import jobs_in_progress
from src.runtime import chaos
from src.runtime.deps import Deps

RELAY_BATCH = 50

# Dispatch job ids running in this process (a job called directly has no arq in-progress key).
_RUNNING: Counter[str] = Counter()


class Orphan(StrEnum):
    """Why a relay takes an outbox row, as its log line says it."""

    OWN_EARLIER_TRY = "its own earlier try"
    DEAD_JOB = "a dispatch job that died after its commit"
    PAST_GRACE = "a dispatch job still unpublished after OUTBOX_RELAY_GRACE_S"


@contextmanager
def running(dispatch_job_id: str) -> Iterator[None]:
    """Mark a dispatch job as running in this process while the block runs: its rows are not dead."""
    _RUNNING[dispatch_job_id] += 1
    try:
        yield
    finally:
        _RUNNING[dispatch_job_id] -= 1
        if not _RUNNING[dispatch_job_id]:
            del _RUNNING[dispatch_job_id]


def _now_ms(deps: Deps) -> int:
    return deps.clock.wall_ms(deps.clock())


async def publish(
    deps: Deps, conn: asyncpg.Connection, outbox_id: int, batch: bytes, count: int
) -> list[bool] | None:
    """Enqueue the batch (of `count` jobs) a dispatch just committed, then delete its row; per job, True
    when this call wrote it. None when a relay holds the row: that relay enqueues it."""
    return (await publish_many(deps, conn, [(outbox_id, batch, count)])).get(outbox_id)


async def publish_many(
    deps: Deps, conn: asyncpg.Connection, rows: Sequence[tuple[int, bytes, int]]
) -> dict[int, list[bool]]:
    """`publish` of several committed batches (outbox id, batch, its job count) in one transaction and
    one enqueue: per row this call took, each job's written flag (a row a relay holds: no key, that relay
    enqueues it)."""
    async with conn.transaction():
        taken = await queries.take_outboxes(conn, outbox_ids=[outbox_id for outbox_id, _, _ in rows])
        batches = [row for row in rows if row[0] in taken]
        if not batches:
            return {}
        # Each batch is a JSON array (job_writer.encode_batch): their items, as one array.
        joined = b"[" + b",".join(batch[1:-1] for _, batch, _ in batches) + b"]"
        written = await deps.job_writer.enqueue_batch(joined, now_ms=_now_ms(deps))
        await chaos.pause(deps.config, "after_enqueue")
    out, start = {}, 0
    for outbox_id, _, count in batches:
        out[outbox_id], start = written[start : start + count], start + count
    return out


async def relay_orphans(
    deps: Deps, *, tenant_id: UUID | Sequence[UUID] | None, own_job_id: str | None = None
) -> int:
    """Enqueue the batches no running dispatch will publish (the tenant's or tenants', or every
    tenant's): those of `own_job_id`'s earlier tries first, then those of dead jobs, then those past the
    grace. Returns how many jobs were relayed."""
    relayed, after_id = 0, 0
    async with deps.pg.acquire() as conn:
        while True:
            waiting = await queries.outbox_waiting(
                conn,
                grace_s=deps.config.outbox_relay_grace_s,
                after_id=after_id,
                limit=RELAY_BATCH,
                tenant_id=tenant_id,
            )
            relayed += await _relay_all(deps, conn, await _orphans(deps, waiting, own_job_id))
            if len(waiting) < RELAY_BATCH:
                return relayed
            after_id = waiting[-1].id


async def _orphans(
    deps: Deps, waiting: Sequence[queries.OutboxWaiting], own_job_id: str | None
) -> dict[int, Orphan]:
    """The rows to relay now, and why, own rows first; the others are left to a job that may still
    publish them."""
    others = {row.dispatch_job_id for row in waiting if row.dispatch_job_id != own_job_id}
    alive = await jobs_in_progress(deps.redis, others) | (others & _RUNNING.keys())
    orphans: dict[int, Orphan] = {}
    for row in sorted(waiting, key=lambda row: row.dispatch_job_id != own_job_id):
        if row.dispatch_job_id == own_job_id:
            orphans[row.id] = Orphan.OWN_EARLIER_TRY
        elif row.dispatch_job_id not in alive:
            orphans[row.id] = Orphan.DEAD_JOB
        elif row.past_grace:
            orphans[row.id] = Orphan.PAST_GRACE
    return orphans


async def _relay_all(deps: Deps, conn: asyncpg.Connection, orphans: dict[int, Orphan]) -> int:
    """Claim the rows and relay them in the order given, in one transaction; a row someone else holds
    (another relay, or a publisher past the grace) is theirs to enqueue."""
    if not orphans:
        return 0
    relayed = 0
    async with conn.transaction():
        claimed = {row.id: row for row in await queries.claim_outbox(conn, outbox_ids=list(orphans))}
        for outbox_id, orphan in orphans.items():
            if outbox_id in claimed:
                relayed += await _relay(deps, conn, claimed[outbox_id], orphan)
    return relayed


async def _relay(deps: Deps, conn: asyncpg.Connection, row: queries.OutboxRow, orphan: Orphan) -> int:
    written = await deps.job_writer.enqueue_batch(row.jobs, now_ms=_now_ms(deps))
    await chaos.pause(deps.config, "after_enqueue")
    await queries.delete_outbox(conn, outbox_id=row.id)
    logger.warning(
        "relayed {} jobs of {} (dispatch {}, outbox row {}): {} written, {} already queued",
        row.job_count,
        orphan,
        row.dispatch_job_id,
        row.id,
        sum(written),
        len(written) - sum(written),
    )
    return row.job_count
