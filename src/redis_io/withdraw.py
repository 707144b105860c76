"""Taking a lead's messages off the output queues before a sender runs them (an objection, GDPR art. 21).

One Lua call per set of jobs, so that no worker can start a job between our look and our removal: a job
a sender already runs (arq's in-progress key exists) is left alone and reported, since it cannot be
stopped any more; a job still waiting loses its job key and its queue entry. A stock arq worker that had
already read the queue entry finds no job and drops it without running it ("job expired"). Nothing else
is touched: not the quota counters, not the reservations, not other jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from src.names import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX

# ARGV[1], ARGV[2]: arq's job and in-progress key prefixes; then per job its id and its queue ('' when the
# queue is not known: the job key alone goes). Returns per job 1 withdrawn, 2 running (left alone),
# 0 not waiting (sent, expired, or never there).
_WITHDRAW_LUA = """
local job_prefix, progress_prefix = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local job_id, queue = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', progress_prefix .. job_id) == 1 then
    out[#out + 1] = 2
  elseif redis.call('DEL', job_prefix .. job_id) == 1 then
    if queue ~= '' then redis.call('ZREM', queue, job_id) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


class Withdrawal(StrEnum):
    WITHDRAWN = "WITHDRAWN"
    RUNNING = "RUNNING"  # a sender has it: too late
    NOT_WAITING = "NOT_WAITING"  # already sent and gone, expired, or never enqueued


_OUTCOMES = {1: Withdrawal.WITHDRAWN, 2: Withdrawal.RUNNING, 0: Withdrawal.NOT_WAITING}


@dataclass(frozen=True, slots=True)
class Waiting:
    job_id: str
    queue: str | None


async def withdraw(redis: Redis, jobs: Sequence[Waiting]) -> list[Withdrawal]:
    """Withdraw each job that still waits; per job, what happened."""
    if not jobs:
        return []
    args: list[str] = [ARQ_JOB_PREFIX, ARQ_IN_PROGRESS_PREFIX]
    for job in jobs:
        args += [job.job_id, job.queue or ""]
    raw = await redis.register_script(_WITHDRAW_LUA)(keys=[], args=args)
    return [_OUTCOMES[int(flag)] for flag in raw]
