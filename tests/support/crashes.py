"""A dispatch killed exactly where a test says: its worker process pauses at a named step (CHAOS_PAUSE_AT,
src/runtime/chaos.py) and is SIGKILLed there, so that the kill lands between two of its writes."""

from __future__ import annotations

import signal
from uuid import UUID

from redis.asyncio import Redis

from src.client import EnqueuedJob, OutreachClient
from src.contracts import DispatchResult
from tests.support.workers import Workers, wait_for_line


async def dispatch_killed_at(
    step: str,
    workers: Workers,
    redis: Redis,
    client: OutreachClient,
    tenant: UUID,
    *,
    job_id: str,
    batch_size: int,
    **env: str,
) -> EnqueuedJob[DispatchResult]:
    """Runs dispatch `job_id` of `tenant` on a DispatchSettings worker (with `env`) that pauses at `step`,
    and SIGKILLs the worker there. arq runs the job again once its in-progress key is gone."""
    doomed = workers.new("DispatchSettings", CHAOS_PAUSE_AT=step, CHAOS_PAUSE_S="30", **env).start()
    try:
        await doomed.wait_healthy(redis)
        killed = await client.dispatch(tenant_id=tenant, batch_size=batch_size, job_id=job_id)
        await wait_for_line(doomed, "chaos: pausing")
        doomed.signal(signal.SIGKILL)
        assert await doomed.wait_exit(timeout=10) == -signal.SIGKILL
    finally:
        doomed.kill()
    return killed
