"""Writing jobs for the downstream senders, many in one round trip.

arq has no bulk enqueue, and `ArqRedis.enqueue_job` costs three round trips a job (WATCH+EXISTS, MULTI,
EXEC). This Lua script keeps arq's exact semantics for the pinned version (arq/connections.py): a job id
whose `arq:job:` or `arq:result:` key exists is skipped; otherwise PSETEX the serialized job with arq's
default expiry and ZADD it to its queue, scored with the enqueue time. A stock arq Worker consumes what
it writes (tests/integration/test_outbound.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX
from src.serialization import job_serializer

# arq.constants.expires_extra_ms: a job not started within a day expires.
JOB_EXPIRES_MS = 86_400_000

# Writes one job as arq stores it unless its id is taken (its job or result key exists): 1 when written.
# Shared by the bulk script below and the reserve-and-enqueue script of src/quota.py.
ENQUEUE_ONE_LUA = """
local function enqueue_one(job_key, result_key, queue_key, job_id, body, score, expires)
  if redis.call('EXISTS', job_key, result_key) == 0 then
    redis.call('PSETEX', job_key, expires, body)
    redis.call('ZADD', queue_key, score, job_id)
    return 1
  end
  return 0
end
"""

# KEYS: per job, its job key, result key and queue key. ARGV[1]: expiry in ms, ARGV[2]: score (the
# enqueue time), ARGV[3]: length of the job key prefix; then per job its serialized form. The job id is
# the job key without its prefix (one argument a job fewer to send). Returns 1 per job written, 0 per
# job skipped because its id is taken.
_ENQUEUE_LUA = (
    ENQUEUE_ONE_LUA
    + """
local expires, score, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for n = 1, #KEYS / 3 do
  local job_key = KEYS[3 * n - 2]
  local job_id = string.sub(job_key, prefix + 1)
  out[n] = enqueue_one(job_key, KEYS[3 * n - 1], KEYS[3 * n], job_id, ARGV[3 + n], score, expires)
end
return out
"""
)


@dataclass(frozen=True, slots=True)
class OutgoingJob:
    job_id: str
    queue: str
    function: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedJob:
    """A job whose payload is already JSON (a dispatch serialized it once for its outbox row)."""

    job_id: str
    queue: str
    function: str
    payload_json: bytes


def job_keys(job_id: str, queue: str) -> list[str]:
    """The keys the enqueue scripts touch for one job: its job key, its result key and its queue."""
    return [ARQ_JOB_PREFIX + job_id, ARQ_RESULT_PREFIX + job_id, queue]


def arq_job_bytes(function: str, payload: dict[str, Any], enqueue_ms: int) -> bytes:
    """A job as arq stores it: function, one positional argument, no kwargs, first try."""
    return job_serializer({"t": None, "f": function, "a": [payload], "k": {}, "et": enqueue_ms})


def arq_job_bytes_from_json(function: str, payload_json: bytes, enqueue_ms: int) -> bytes:
    """`arq_job_bytes` around a payload that is already JSON, without parsing it again: for the same
    payload serialized by `src.serialization.dumps`, the very same bytes."""
    return b'{"t":null,"f":%b,"a":[%b],"k":{},"et":%d}' % (orjson.dumps(function), payload_json, enqueue_ms)


class Outbound:
    def __init__(self, redis: Redis) -> None:
        self._enqueue = redis.register_script(_ENQUEUE_LUA)

    async def enqueue(self, jobs: Sequence[OutgoingJob], *, now_ms: int) -> list[bool]:
        """Enqueue every job whose id is free; True where this call wrote the job."""
        return await self._write(
            [(j.job_id, j.queue, arq_job_bytes(j.function, j.payload, now_ms)) for j in jobs], now_ms
        )

    async def enqueue_encoded(self, jobs: Sequence[EncodedJob], *, now_ms: int) -> list[bool]:
        """`enqueue` for jobs whose payload is already JSON."""
        return await self._write(
            [(j.job_id, j.queue, arq_job_bytes_from_json(j.function, j.payload_json, now_ms)) for j in jobs],
            now_ms,
        )

    async def _write(self, jobs: Sequence[tuple[str, str, bytes]], now_ms: int) -> list[bool]:
        if not jobs:
            return []
        keys: list[str] = []
        args: list[str | bytes | int] = [JOB_EXPIRES_MS, now_ms, len(ARQ_JOB_PREFIX)]
        for job_id, queue, body in jobs:
            keys += job_keys(job_id, queue)
            args.append(body)
        written = await self._enqueue(keys=keys, args=args)
        return [bool(int(flag)) for flag in written]
