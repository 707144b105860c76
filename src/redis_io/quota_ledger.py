"""Daily WhatsApp quota in Redis: reading the counters and reserving sends atomically.

The counter `quota:wa:{phoneId}:{date}` (docs/contract.md §2) counts reservations. One Lua script
reserves a whole batch in one round trip. It never lets a counter pass the phone's daily_limit, and it
counts each job id once: a hash per tenant and day maps job id -> phone, so a job retried after a crash
finds its reservation instead of taking a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast
from uuid import UUID

from redis.asyncio import Redis

from src.names import quota_key, quota_reservations_key
from src.redis_io.job_writer import ENQUEUE_ONE_LUA, JOB_EXPIRES_MS, OutgoingJob, arq_job_bytes, job_keys
from src.redis_io.replicas import ReplicaAcks

# KEYS[1]          reservations hash (job id -> phone id) of the tenant and day
# KEYS[1+p]        counter of phone p, p = 1..P
# ARGV[1]          key TTL in seconds
# ARGV[2]          P
# ARGV[2+p]        id of phone p
# ARGV[2+P+p]      daily limit of phone p
# ARGV[3+2P...]    per request: job id, index of the wanted phone, "1" to fall through to the phone with
#                  the most room when the wanted one is full, "0" to take that phone or nothing
# Returns, per request, the index of the phone reserved (0: none) and 1 when an earlier reservation of the
# same job id was reused; then the P counters after the batch.
_RESERVE_LUA = """
local ttl = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local index_of, used, limit = {}, {}, {}
for p = 1, count do
  index_of[ARGV[2 + p]] = p
  used[p] = tonumber(redis.call('GET', KEYS[1 + p]) or '0')
  limit[p] = tonumber(ARGV[2 + count + p])
end
local out = {}
local touched = false
local i = 3 + 2 * count
while i <= #ARGV do
  local job, wanted, fall_through = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1'
  local previous = redis.call('HGET', KEYS[1], job)
  local chosen, reused = 0, 0
  if previous and index_of[previous] then
    chosen, reused = index_of[previous], 1
  else
    if used[wanted] < limit[wanted] then
      chosen = wanted
    elseif fall_through then
      local best_room = 0
      for p = 1, count do
        local room = limit[p] - used[p]
        if room > best_room then chosen, best_room = p, room end
      end
    end
    if chosen > 0 then
      used[chosen] = redis.call('INCR', KEYS[1 + chosen])
      redis.call('HSET', KEYS[1], job, ARGV[2 + chosen])
      touched = true
    end
  end
  out[#out + 1] = chosen
  out[#out + 1] = reused
  i = i + 3
end
if touched then
  redis.call('EXPIRE', KEYS[1], ttl)
  for p = 1, count do redis.call('EXPIRE', KEYS[1 + p], ttl) end
end
for p = 1, count do out[#out + 1] = used[p] end
return out
"""


# `_RESERVE_LUA` for one request that takes its phone or nothing (fall_through "0"), followed by the
# enqueue of its job when the reservation is on that phone: the route job's usual case in one round trip.
# It reads and writes only that phone's counter; the tenant's available phones come as one
# comma-separated argument (only an earlier reservation of the job id is looked up in it).
# KEYS[1] reservations hash of the tenant and day, KEYS[2] counter of the wanted phone, KEYS[3..5] the
# job's job key, result key and queue (src.redis_io.job_writer.job_keys)
# ARGV[1] key TTL in seconds, ARGV[2] job id, ARGV[3] wanted phone id, ARGV[4] its daily limit,
# ARGV[5] ids of the tenant's available phones, comma-separated, ARGV[6] job expiry in ms after it is
# due, ARGV[7] the serialized job, ARGV[8] its score (when it is due), ARGV[9] the enqueue time
# Returns the phone reserved ('' for none), 1 when an earlier reservation of the job id was reused, and
# 1 or 0 when the job was or was not written, -1 when it was not enqueued: no reservation, or one an
# earlier try made on another phone (the job names its phone, so the caller writes it for that phone).
_RESERVE_AND_ENQUEUE_LUA = (
    ENQUEUE_ONE_LUA
    + """
local previous = redis.call('HGET', KEYS[1], ARGV[2])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local reused = 0
if previous and string.find(',' .. ARGV[5] .. ',', ',' .. previous .. ',', 1, true) then
  if previous ~= ARGV[3] then
    return {previous, 1, -1}
  end
  reused = 1
elseif used < tonumber(ARGV[4]) then
  redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
else
  return {'', 0, -1}
end
return {ARGV[3], reused, enqueue_one(KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[7], ARGV[8], ARGV[9], ARGV[6])}
"""
)


@dataclass(frozen=True, slots=True)
class PhoneLimit:
    phone_id: UUID
    daily_limit: int


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    job_id: str
    phone_id: UUID
    # False for a sticky conversation: that phone or nothing. True for a new lead: any phone with room.
    fall_through: bool


@dataclass(frozen=True, slots=True)
class Reservation:
    job_id: str
    phone_id: UUID | None
    reused: bool


class QuotaLedger:
    """`reserve` and `reserve_and_enqueue` return once `acks` has confirmed their writes (replicas.py):
    the caller commits journeys and reports a routed message on them."""

    def __init__(self, redis: Redis, *, ttl_s: int, acks: ReplicaAcks) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._acks = acks
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._reserve_and_enqueue = redis.register_script(_RESERVE_AND_ENQUEUE_LUA)

    async def used(self, phone_ids: Sequence[UUID], quota_date: date) -> dict[UUID, int]:
        if not phone_ids:
            return {}
        values = await self._redis.mget([quota_key(pid, quota_date) for pid in phone_ids])
        return {pid: int(value or 0) for pid, value in zip(phone_ids, values, strict=True)}

    async def reserved(self, *, tenant_id: UUID, quota_date: date, job_ids: Sequence[str]) -> dict[str, UUID]:
        """Job id -> phone of the reservations already made for these job ids (by an earlier try)."""
        if not job_ids:
            return {}
        pending = self._redis.hmget(quota_reservations_key(tenant_id, quota_date), list(job_ids))
        phones = await cast(Awaitable[list[bytes | None]], pending)
        return {job_id: UUID(phone.decode()) for job_id, phone in zip(job_ids, phones, strict=True) if phone}

    def _ttl(self, ahead_s: int) -> int:
        """The keys of a day whose sends are `ahead_s` seconds away (a deferred message) live that much
        longer: counted from now, QUOTA_KEY_TTL_S could end before that day does, and with it the count."""
        return self._ttl_s + max(0, ahead_s)

    async def reserve(
        self,
        *,
        tenant_id: UUID,
        quota_date: date,
        phones: Sequence[PhoneLimit],
        requests: Sequence[ReservationRequest],
        ahead_s: int = 0,
    ) -> tuple[list[Reservation], dict[UUID, int]]:
        """Reserve one send per request, atomically; `phones` are the tenant's available phones.
        `ahead_s`: how far ahead of now the sends are due."""
        if not requests:
            return [], {}
        position = {phone.phone_id: index for index, phone in enumerate(phones, start=1)}
        keys = [quota_reservations_key(tenant_id, quota_date)]
        keys += [quota_key(phone.phone_id, quota_date) for phone in phones]
        args: list[str | int] = [self._ttl(ahead_s), len(phones)]
        args += [str(phone.phone_id) for phone in phones]
        args += [phone.daily_limit for phone in phones]
        for request in requests:
            args += [request.job_id, position[request.phone_id], "1" if request.fall_through else "0"]
        raw = await self._reserve(keys=keys, args=args)
        await self._acks.confirm()
        reservations = [
            Reservation(
                job_id=request.job_id,
                phone_id=phones[int(raw[2 * n]) - 1].phone_id if int(raw[2 * n]) else None,
                reused=bool(int(raw[2 * n + 1])),
            )
            for n, request in enumerate(requests)
        ]
        tail = raw[2 * len(requests) :]
        counters = {phone.phone_id: int(tail[n]) for n, phone in enumerate(phones)}
        return reservations, counters

    async def reserve_and_enqueue(
        self,
        *,
        tenant_id: UUID,
        quota_date: date,
        phone: PhoneLimit,
        available: str,
        job: OutgoingJob,
        now_ms: int,
    ) -> tuple[Reservation, bool | None]:
        """`reserve` of one request without fall-through, for `job.job_id`: `phone` or nothing, unless an
        earlier try of the same job id reserved one of the `available` phones (the tenant's ids,
        comma-separated), which is reused. When the reservation is on `phone`, `job` is enqueued in the
        same script (as `JobWriter.enqueue` would, due at `job.due_ms`). Returns the reservation and
        whether the job was written, None when it was not enqueued (no reservation, or one on another
        phone)."""
        due_ms = now_ms if job.due_ms is None else job.due_ms
        first: Reservation | None = None
        if self._acks.min_acks:
            first = await self._reserve_confirmed(
                tenant_id, quota_date, phone, available, job.job_id, due_ms - now_ms
            )
            if first.phone_id != phone.phone_id:
                return first, None
        keys = [quota_reservations_key(tenant_id, quota_date), quota_key(phone.phone_id, quota_date)]
        keys += job_keys(job.job_id, job.queue)
        args: list[str | int | bytes] = [
            self._ttl((due_ms - now_ms) // 1000),
            job.job_id,
            str(phone.phone_id),
            phone.daily_limit,
            available,
            JOB_EXPIRES_MS,
            arq_job_bytes(job.function, job.payload, now_ms),
            due_ms,
            now_ms,
        ]
        reserved, reused, written = await self._reserve_and_enqueue(keys=keys, args=args)
        await self._acks.confirm()
        reservation = first or Reservation(
            job_id=job.job_id, phone_id=UUID(reserved.decode()) if reserved else None, reused=bool(reused)
        )
        return reservation, None if int(written) < 0 else bool(written)

    async def _reserve_confirmed(
        self, tenant_id: UUID, quota_date: date, phone: PhoneLimit, available: str, job_id: str, ahead_ms: int
    ) -> Reservation:
        """`reserve_and_enqueue`'s reservation alone, confirmed by the replicas before its message is queued.
        A sender takes a message the moment it is queued, before any WAIT: were its reservation still on the
        primary alone, a failover could lose the reservation of a message already sent, and the phone would
        pass its daily_limit. The enqueue that follows finds this reservation and reuses it. The tenant's
        other available phones are passed only so that an earlier try's reservation on one of them is
        found (their limits play no part: no fall-through)."""
        others = [
            PhoneLimit(UUID(other), 0)
            for other in available.split(",")
            if other and other != str(phone.phone_id)
        ]
        [reservation], _ = await self.reserve(
            tenant_id=tenant_id,
            quota_date=quota_date,
            phones=[phone, *others],
            requests=[ReservationRequest(job_id, phone.phone_id, fall_through=False)],
            ahead_s=ahead_ms // 1000,
        )
        return reservation
