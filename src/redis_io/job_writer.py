"""Writing jobs for the downstream senders, many in one round trip.

arq has no bulk enqueue, and `ArqRedis.enqueue_job` costs three round trips a job (WATCH+EXISTS, MULTI,
EXEC). One Lua call enqueues a whole batch and keeps arq's exact semantics for the pinned version
(arq/connections.py): a job id whose `arq:job:` or `arq:result:` key exists is skipped; otherwise PSETEX
the serialized job and ZADD it to its queue, scored with the instant it is due (the enqueue time unless
it is deferred, as arq's `_defer_until`). Its expiry counts from that instant, as arq's does
(`score - enqueue_time + expires_extra_ms`): a message deferred over a weekend must not expire before it
is due. A stock arq Worker consumes what it writes (tests/integration/test_outbound.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from src.names import ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX
from src.redis_io.codec import job_serializer
from src.redis_io.replicas import ReplicaAcks

# arq.constants.expires_extra_ms: a job not started within a day of its due time expires.
JOB_EXPIRES_MS = 86_400_000

# Writes one job as arq stores it unless its id is taken (its job or result key exists): 1 when written.
# `score` is the instant the job is due and `now` the enqueue time, both in ms; the job expires `extra`
# ms after the later of the two (a score in the past never makes a negative expiry, which would fail the
# script halfway through a batch). Formatted as an integer: PSETEX refuses "1.2e+11".
ENQUEUE_ONE_LUA = """
local function enqueue_one(job_key, result_key, queue_key, job_id, body, score, now, extra)
  if redis.call('EXISTS', job_key, result_key) == 0 then
    local expires = math.max(tonumber(score), tonumber(now)) - tonumber(now) + tonumber(extra)
    redis.call('PSETEX', job_key, string.format('%d', expires), body)
    redis.call('ZADD', queue_key, score, job_id)
    return 1
  end
  return 0
end
"""

# ARGV[1]: expiry in ms after the job is due, ARGV[2]: the enqueue time in ms (the score of a job that
# carries none), ARGV[3] and ARGV[4]: arq's job and result key prefixes, ARGV[5]: the batch, a JSON array
# of [job id, queue, the job as arq stores it] or [job id, queue, job, score] (one argument: redis-py
# packs each argument in Python, which cost more than the script for a thousand jobs). The keys are built
# here from the job ids, so the script suits one Redis, not a Redis Cluster (arq does not support Cluster
# either). Returns 1 per job written, 0 per job skipped because its id is taken.
_ENQUEUE_BATCH_LUA = (
    ENQUEUE_ONE_LUA
    + """
local extra, now, job_prefix, result_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
for n, job in ipairs(cjson.decode(ARGV[5])) do
  local job_id, score = job[1], job[4] or now
  out[n] = enqueue_one(job_prefix .. job_id, result_prefix .. job_id, job[2], job_id, job[3], score, now,
                       extra)
end
return out
"""
)


# A UTC instant in microseconds since the epoch as `src.domain.windows.utc_iso` writes it, in Lua:
# YYYY-MM-DDTHH:MM:SS, then .ffffff unless the microseconds are 0, then Z. The date from the day number
# by H. Hinnant's civil_from_days. Every value stays an integer below 2^53, exact in Lua's doubles.
ISO_LUA = """
local function iso(us)
  local micros = us % 1000000
  local seconds = (us - micros) / 1000000
  local rest = seconds % 86400
  local z = (seconds - rest) / 86400 + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local leap = math.floor(doe / 1460) - math.floor(doe / 36524) + math.floor(doe / 146096)
  local yoe = math.floor((doe - leap) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  local text = string.format('%04d-%02d-%02dT%02d:%02d:%02d', year, month, day, math.floor(rest / 3600),
                             math.floor(rest % 3600 / 60), rest % 60)
  if micros > 0 then text = text .. string.format('.%06d', micros) end
  return text .. 'Z'
end
"""

# Where a slotted job's scheduledAt goes, as the job is first serialized.
_SLOT_MARK = "<<scheduledAt>>"


@dataclass(frozen=True, slots=True)
class SlottedJob:
    """A job due at the slot its reservation gets, whose payload says that slot as `scheduledAt`: the
    reservation script writes it (QuotaLedger.reserve_and_enqueue), the slot's instant put between the
    job's two halves as arq stores it."""

    job_id: str
    queue: str
    head: str  # the job as arq stores it, up to its scheduledAt's value
    tail: str  # the rest, after that value
    now_us: int  # the reservation's now (the service's clock), in microseconds since the epoch
    enqueue_ms: int  # the host's time of the enqueue: arq's enqueue time, and the due time's base

    def argument(self, expires_extra_ms: int) -> bytes:
        """The job as the reservation script takes it."""
        return orjson.dumps(
            [
                self.job_id,
                self.queue,
                self.head,
                self.tail,
                self.now_us,
                self.enqueue_ms,
                expires_extra_ms,
                ARQ_JOB_PREFIX,
                ARQ_RESULT_PREFIX,
            ]
        )


def slotted_job(
    job_id: str, queue: str, function: str, payload: dict[str, Any], *, now_us: int, enqueue_ms: int
) -> SlottedJob | None:
    """`payload` as a SlottedJob; None when the payload already holds the mark of the slot's place (the
    caller then reserves first and enqueues the job, complete, after)."""
    body = arq_job_bytes(function, {**payload, "scheduledAt": _SLOT_MARK}, enqueue_ms).decode()
    parts = body.split(f'"{_SLOT_MARK}"')
    if len(parts) != 2:
        return None
    return SlottedJob(job_id, queue, parts[0] + '"', '"' + parts[1], now_us, enqueue_ms)


@dataclass(frozen=True, slots=True)
class OutgoingJob:
    job_id: str
    queue: str
    function: str
    payload: dict[str, Any]
    due_ms: int | None = None  # the host time in ms at which it is due; None: at once


# One job as the batch carries it: job id, queue, the job as arq stores it, and optionally its score (the
# host time in ms at which it is due; without it, the enqueue time).
EncodedJob = tuple[str, str, bytes] | tuple[str, str, bytes, int | None]


def job_keys(job_id: str, queue: str) -> list[str]:
    """The keys an enqueue touches for one job: its job key, its result key and its queue."""
    return [ARQ_JOB_PREFIX + job_id, ARQ_RESULT_PREFIX + job_id, queue]


def arq_job_bytes(function: str, payload: dict[str, Any], enqueue_ms: int) -> bytes:
    """A job as arq stores it: function, one positional argument, no kwargs, first try."""
    return job_serializer({"t": None, "f": function, "a": [payload], "k": {}, "et": enqueue_ms})


def arq_job_bytes_from_json(function: str, payload_json: bytes, enqueue_ms: int) -> bytes:
    """`arq_job_bytes` around a payload that is already JSON, without parsing it again: for the same
    payload serialized by `src.redis_io.codec.dumps`, the very same bytes."""
    return b'{"t":null,"f":%b,"a":[%b],"k":{},"et":%d}' % (orjson.dumps(function), payload_json, enqueue_ms)


def encode_batch(jobs: Iterable[EncodedJob]) -> bytes:
    """(job id, queue, job as arq stores it[, score]) for each job, as the enqueue script takes them: what
    a dispatch writes into its outbox row and then enqueues."""
    return orjson.dumps([_encoded(*job) for job in jobs])


def _encoded(job_id: str, queue: str, body: bytes, score: int | None = None) -> list[str | int]:
    if score is None:
        return [job_id, queue, body.decode()]
    return [job_id, queue, body.decode(), score]


class JobWriter:
    """`enqueue` and `enqueue_batch` return once `acks` has confirmed the jobs (replicas.py): the caller
    deletes the outbox row, or reports a routed message, on them."""

    def __init__(self, redis: Redis, *, acks: ReplicaAcks, expires_extra_ms: int = JOB_EXPIRES_MS) -> None:
        self._enqueue = redis.register_script(_ENQUEUE_BATCH_LUA)
        self._acks = acks
        self._expires_extra_ms = expires_extra_ms

    async def enqueue(self, jobs: Sequence[OutgoingJob], *, now_ms: int) -> list[bool]:
        """Enqueue every job whose id is free, each due at its `due_ms` (else now); True where this call
        wrote the job."""
        if not jobs:
            return []
        batch = encode_batch(
            (j.job_id, j.queue, arq_job_bytes(j.function, j.payload, now_ms), j.due_ms) for j in jobs
        )
        return await self.enqueue_batch(batch, now_ms=now_ms)

    async def enqueue_batch(self, batch: bytes, *, now_ms: int) -> list[bool]:
        """`enqueue` for a batch already encoded by `encode_batch`; `now_ms` is the enqueue time."""
        args: list[int | str | bytes] = [
            self._expires_extra_ms,
            now_ms,
            ARQ_JOB_PREFIX,
            ARQ_RESULT_PREFIX,
            batch,
        ]
        written = await self._enqueue(keys=[], args=args)
        await self._acks.confirm()
        return [bool(flag) for flag in written]
