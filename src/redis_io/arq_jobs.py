"""What arq's own keys say about a job, read by the service (arq's key names: src/names.py)."""

from __future__ import annotations

from collections.abc import Collection

from redis.asyncio import Redis

from src.names import ARQ_IN_PROGRESS_PREFIX


async def jobs_in_progress(redis: Redis, job_ids: Collection[str]) -> set[str]:
    """The ids among `job_ids` whose `arq:in-progress:` key exists, in one round trip.

    A worker sets that key when it starts a job and deletes it when the job ends (done, failed or
    deferred for a retry); a worker killed mid-job leaves it to expire (the job timeout + 10 s), and
    only then may arq run the job again. So a job without the key is not running on any worker."""
    if not job_ids:
        return set()
    ordered = list(job_ids)
    values = await redis.mget([ARQ_IN_PROGRESS_PREFIX + job_id for job_id in ordered])
    return {job_id for job_id, value in zip(ordered, values, strict=True) if value is not None}
