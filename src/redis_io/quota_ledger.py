"""WhatsApp sender limits in Redis: reading the counters and reserving sends atomically.

The counter `quota:wa:{phoneId}:{date}` (docs/contract.md §2) counts reservations. One Lua script
reserves a whole batch in one round trip, over three limits at once: a phone's counter never passes its
effective daily limit, a phone's messages are scheduled at least their gap apart inside the window
(`pace:wa:{phoneId}:{date}`, its next free instant), and the tenant's unique recipients in a moving 24 h
never pass its portfolio budget (`portfolio:wa:{tenantId}`). It counts each job id once: hashes per tenant
and day map job id -> phone and job id -> slot, so a job retried after a crash finds its reservation and
its scheduled time instead of taking a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast
from uuid import UUID

import orjson
from redis.asyncio import Redis

from src.domain.senders import PORTFOLIO_WINDOW, Shortfall
from src.names import pace_key, pace_slots_key, portfolio_key, quota_key, quota_reservations_key
from src.redis_io.job_writer import ENQUEUE_ONE_LUA, ISO_LUA, JOB_EXPIRES_MS, SlottedJob
from src.redis_io.replicas import ReplicaAcks

# Today's counters of many phones. An MGET would do, but redis-py packs each of its keys in Python: for a
# tenant's 50 phones that cost a per-lead job more than the round trip itself (bench/job_cpu.py). So the
# script gets the phone ids as one JSON argument and builds the keys itself, around the id.
# ARGV[1], ARGV[2] what comes before and after the phone id in the day's counter key (names.quota_key)
# ARGV[3]          the phone ids, one JSON array
# Returns each phone's counter, false when it has none. MGET goes in steps of 1000 keys (Lua's unpack
# has a limit).
_USED_LUA = """
local head, tail, ids = ARGV[1], ARGV[2], cjson.decode(ARGV[3])
local out = {}
for first = 1, #ids, 1000 do
  local keys = {}
  for n = first, math.min(first + 999, #ids) do keys[#keys + 1] = head .. ids[n] .. tail end
  for _, value in ipairs(redis.call('MGET', unpack(keys))) do out[#out + 1] = value end
end
return out
"""
_ID = "{id}"  # where the phone id goes in a counter's key, for _USED_LUA

# One script reserves a whole batch, atomically over the three limits of a WhatsApp message: the phone's
# daily quota (its effective limit), the phone's pacing schedule (a slot inside the window, at least the
# previous message's gap after it) and the tenant's portfolio budget (unique recipients in a moving 24 h).
# Instants are epoch ms on the service's clock (src/runtime/clock.py).
# Its one argument is a JSON array (one argument: redis-py packs each argument in Python, which cost a route
# more than the script itself, and a dispatch more than the script too when the requests were many):
# [1]  key TTL in seconds (the portfolio key's is its own: 24 h past its newest score)
# [2]  now
# [3], [4] the window [opens, closes) that a paced slot must fall in
# [5]  portfolio limit, 0 for none
# [6]  the portfolio's moving window (24 h)
# [7]  the reservations hash (job id -> phone id) of the tenant and day
# [8]  the slots hash (job id -> scheduled ms) of the tenant and day
# [9]  the portfolio sorted set of the tenant (recipient -> ms of its latest scheduled message)
# [10] the phones p = 1..P, each [id, effective daily limit, quota counter key, pace key (its next free
#      instant that day)]
# [11] the requests, each an array of 6: job id; index of the wanted phone; "1" to fall through to the
#      phone with the most room when the wanted one cannot take it, "0" for that phone or nothing, "2" for
#      that phone or nothing unless an earlier reservation of the job id is on a phone not passed (then
#      -4, below); recipient E.164 ("" for none); the gap after its message; "1" to send now (slot = now,
#      outside the window too: still counted, and still pushing the phone's next free instant), "0" to
#      take the phone's next free slot
# The keys come built (src/names.py), so the script suits one Redis, not a Redis Cluster, as the enqueue
# script (src/redis_io/job_writer.py).
# Returns, per request: the index of the phone reserved (0: none); 1 when an earlier reservation of the
# same job id was reused; its slot, or when none was reserved, -1 quota spent, -2 no slot left in the
# window, -3 portfolio budget spent, -4 reserved earlier on a phone not passed. Then the P counters
# after the batch.
_RESERVE_FUNCTION_LUA = """
local function reserve(a)
  local ttl, now, opens, closes, budget, window = a[1], a[2], a[3], a[4], a[5], a[6]
  local since = now - window
  local reservations_key, slots_key, portfolio_key = a[7], a[8], a[9]
  local phones, requests = a[10], a[11]
  local count = #phones
  local index_of, used, limit, free = {}, {}, {}, {}
  for p = 1, count do
    index_of[phones[p][1]] = p
    used[p] = tonumber(redis.call('GET', phones[p][3]) or '0')
    free[p] = tonumber(redis.call('GET', phones[p][4]) or '0')
    limit[p] = phones[p][2]
  end
  -- Reads first, one call each for the whole batch: the earlier reservations of these job ids, and which
  -- recipients the portfolio already holds. A batch is at most MAX_BATCH_SIZE requests, so every unpack
  -- below stays far under Lua's limit of 8000 values.
  local jobs, recipients = {}, {}
  for n = 1, #requests do
    jobs[n] = requests[n][1]
    if requests[n][4] ~= '' then recipients[#recipients + 1] = requests[n][4] end
  end
  local previous_phone = redis.call('HMGET', reservations_key, unpack(jobs))
  local previous_slot = redis.call('HMGET', slots_key, unpack(jobs))
  redis.call('ZREMRANGEBYSCORE', portfolio_key, '-inf', '(' .. since)
  local spent = redis.call('ZCARD', portfolio_key)
  local known = {}
  if #recipients > 0 then
    local scores = redis.call('ZMSCORE', portfolio_key, unpack(recipients))
    for n = 1, #recipients do
      if scores[n] then known[recipients[n]] = true end
    end
  end

  local function slot_on(p, send_now)
    if send_now then return now end
    local slot = math.max(free[p], now, opens)
    if slot < closes then return slot end
    return nil
  end

  local function pick(wanted, fall_through, send_now)
    local room_left = used[wanted] < limit[wanted]
    if room_left then
      local slot = slot_on(wanted, send_now)
      if slot then return wanted, slot end
    end
    if fall_through then
      local best, best_room, best_slot = 0, 0, 0
      for p = 1, count do
        local room = limit[p] - used[p]
        if room > 0 then
          room_left = true
          local slot = slot_on(p, send_now)
          if slot and room > best_room then best, best_room, best_slot = p, room, slot end
        end
      end
      if best > 0 then return best, best_slot end
    end
    if room_left then return 0, -2 end
    return 0, -1
  end

  -- Then the decisions, in Lua alone; the writes go at the end, one call per key.
  local out, newest = {}, 0
  local reserved, slots, added, moved = {}, {}, {}, {}
  for n = 1, #jobs do
    local job, wanted, mode, recipient, gap, send_now = unpack(requests[n])
    local fall_through = mode == '1'
    send_now = send_now == '1'
    local previous = previous_phone[n]
    local chosen, reused, slot = 0, 0, -1
    if previous and index_of[previous] then
      chosen, reused = index_of[previous], 1
      slot = tonumber(previous_slot[n] or now)
    elseif previous and mode == '2' then
      slot = -4
    else
      local counts = recipient ~= '' and not known[recipient]
      if budget > 0 and counts and spent >= budget then
        slot = -3
      else
        chosen, slot = pick(wanted, fall_through, send_now)
      end
      if chosen > 0 then
        used[chosen] = used[chosen] + 1
        moved[chosen] = true
        reserved[#reserved + 1] = job
        reserved[#reserved + 1] = phones[chosen][1]
        slots[#slots + 1] = job
        slots[#slots + 1] = slot
        if gap > 0 and slot + gap > free[chosen] then free[chosen] = slot + gap end
        if recipient ~= '' then
          if counts then
            spent = spent + 1
            known[recipient] = true
          end
          added[#added + 1] = slot
          added[#added + 1] = recipient
          newest = math.max(newest, slot)
        end
      end
    end
    out[#out + 1] = chosen
    out[#out + 1] = reused
    out[#out + 1] = slot
  end
  if #reserved > 0 then
    redis.call('HSET', reservations_key, unpack(reserved))
    redis.call('HSET', slots_key, unpack(slots))
    for p = 1, count do
      if moved[p] then
        redis.call('SET', phones[p][3], used[p])
        redis.call('SET', phones[p][4], free[p])
      end
    end
    redis.call('EXPIRE', reservations_key, ttl)
    redis.call('EXPIRE', slots_key, ttl)
    for p = 1, count do
      redis.call('EXPIRE', phones[p][3], ttl)
      redis.call('EXPIRE', phones[p][4], ttl)
    end
  end
  if #added > 0 then redis.call('ZADD', portfolio_key, 'GT', unpack(added)) end
  if newest > 0 then
    local keep = newest - now + window
    if redis.call('PTTL', portfolio_key) < keep then redis.call('PEXPIRE', portfolio_key, keep) end
  end
  for p = 1, count do out[#out + 1] = used[p] end
  return out
end
"""
_RESERVE_LUA = _RESERVE_FUNCTION_LUA + "return reserve(cjson.decode(ARGV[1]))\n"

# One request reserved as above (ARGV[1]) and, when it got a phone, its job enqueued at its slot in the
# same script (src/redis_io/job_writer.py: the job's id checked, the job's payload saying the slot's
# instant): a route's one Redis round trip instead of two. ARGV[2]: the job, a JSON array of its id, its
# queue, the two halves of the job as arq stores it around its scheduledAt's value, the reservation's now
# in microseconds, the host's enqueue time in ms, the expiry after its due time in ms, and arq's job and
# result key prefixes. Returns the reservation's reply, then 1 when the job was written, 0 when its id
# was taken (a retried router job); nothing more when nothing was reserved.
_RESERVE_AND_ENQUEUE_LUA = (
    _RESERVE_FUNCTION_LUA
    + ISO_LUA
    + ENQUEUE_ONE_LUA
    + """
local a = cjson.decode(ARGV[1])
local out = reserve(a)
if out[1] > 0 then
  local job = cjson.decode(ARGV[2])
  local slot, now = out[3], a[2]
  local body = job[3] .. iso(job[5] + (slot - now) * 1000) .. job[4]
  out[#out + 1] = enqueue_one(job[8] .. job[1], job[9] .. job[1], job[2], job[1], body, job[6] + slot - now,
                              job[6], job[7])
end
return out
"""
)


@dataclass(frozen=True, slots=True)
class PhoneLimit:
    phone_id: UUID
    daily_limit: int  # the effective one on the quota date (warm-up included)


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    job_id: str
    phone_id: UUID
    # False for a sticky conversation: that phone or nothing. True for a new lead: any phone with room.
    fall_through: bool
    recipient: str | None = None  # E.164: counted in the portfolio budget; None counts nothing
    gap_ms: int = 0  # the pace after this message (src/domain/senders.py Pace.gap_ms)
    send_now: bool = False  # slot = now, whatever the window and the phone's next free instant
    # With fall_through False: an earlier reservation of the job id on a phone not passed is reported
    # (Reservation.elsewhere) instead of a new one taken, so a caller passes one phone, not the tenant's.
    report_elsewhere: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """Where the batch's slots may fall: [opens_ms, closes_ms), not before now_ms, epoch ms on the
    service's clock; and the tenant's portfolio budget (None: no limit). The default frame schedules
    every message at 0: no pacing."""

    now_ms: int = 0
    opens_ms: int = 0
    closes_ms: int = 2**53
    portfolio_limit: int | None = None


_SHORTFALL_OF = {-1: Shortfall.QUOTA, -2: Shortfall.WINDOW_FULL, -3: Shortfall.PORTFOLIO_LIMIT}
_ELSEWHERE = -4


@dataclass(frozen=True, slots=True)
class Reservation:
    job_id: str
    phone_id: UUID | None
    reused: bool
    slot_ms: int | None = None  # the scheduled send instant; None when nothing was reserved
    shortfall: Shortfall | None = None  # why nothing was reserved
    elsewhere: bool = False  # nothing reserved: an earlier try reserved a phone that was not passed


class QuotaLedger:
    """`reserve` returns once `acks` has confirmed its writes (replicas.py): the caller commits journeys
    and enqueues messages on them."""

    def __init__(
        self, redis: Redis, *, ttl_s: int, acks: ReplicaAcks, expires_extra_ms: int = JOB_EXPIRES_MS
    ) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._acks = acks
        self._expires_extra_ms = expires_extra_ms
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._reserve_and_enqueue = redis.register_script(_RESERVE_AND_ENQUEUE_LUA)
        self._used = redis.register_script(_USED_LUA)

    async def used(self, phone_ids: Sequence[UUID], quota_date: date) -> dict[UUID, int]:
        """Each phone's counter on `quota_date`, 0 without one: one script call (_USED_LUA)."""
        if not phone_ids:
            return {}
        head, tail = quota_key(_ID, quota_date).split(_ID)
        ids = orjson.dumps(phone_ids, default=str)  # asyncpg's UUIDs are not uuid.UUID
        values = await self._used(keys=[], args=[head, tail, ids])
        return {pid: int(value or 0) for pid, value in zip(phone_ids, values, strict=True)}

    async def reserved(self, *, tenant_id: UUID, quota_date: date, job_ids: Sequence[str]) -> dict[str, UUID]:
        """Job id -> phone of the reservations already made for these job ids (by an earlier try)."""
        if not job_ids:
            return {}
        pending = self._redis.hmget(quota_reservations_key(tenant_id, quota_date), list(job_ids))
        phones = await cast(Awaitable[list[bytes | None]], pending)
        return {job_id: UUID(phone.decode()) for job_id, phone in zip(job_ids, phones, strict=True) if phone}

    async def used_and_reserved(
        self, reads: Sequence[tuple[UUID, date, Sequence[UUID], Sequence[str]]]
    ) -> list[tuple[dict[UUID, int], dict[str, UUID]]]:
        """`used` and `reserved` of several tenants in one round trip: per (tenant, quota date, phone
        ids, job ids), each phone's counter and job id -> phone of the reservations already made."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant_id, quota_date, phone_ids, job_ids in reads:
                pipe.mget([quota_key(pid, quota_date) for pid in phone_ids] or ["-"])
                pipe.hmget(quota_reservations_key(tenant_id, quota_date), list(job_ids) or ["-"])
            replies = await pipe.execute()
        out = []
        for n, (_, _, phone_ids, job_ids) in enumerate(reads):
            counters, phones = replies[2 * n], replies[2 * n + 1]
            used = {pid: int(value or 0) for pid, value in zip(phone_ids, counters, strict=False)}
            found = {
                job_id: UUID(phone.decode()) for job_id, phone in zip(job_ids, phones, strict=False) if phone
            }
            out.append((used, found))
        return out

    async def schedule_state(
        self,
        *,
        tenant_id: UUID,
        quota_date: date,
        phone_ids: Sequence[UUID],
        recipients: Sequence[str],
        now_ms: int,
    ) -> tuple[dict[UUID, int], int, frozenset[str]]:
        """What the next reservation would start from, read without writing (a dry run's plan): each
        phone's next free instant, the portfolio's recipients of the last 24 h, and which of
        `recipients` are among them."""
        since = now_ms - int(PORTFOLIO_WINDOW.total_seconds() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.mget([pace_key(pid, quota_date) for pid in phone_ids] or ["-"])
            pipe.zcount(portfolio_key(tenant_id), since, "+inf")
            pipe.zmscore(portfolio_key(tenant_id), list(recipients) or ["-"])
            free, spent, scores = await pipe.execute()
        seen = frozenset(
            r for r, score in zip(recipients, scores, strict=False) if score is not None and score >= since
        )
        return {pid: int(value or 0) for pid, value in zip(phone_ids, free, strict=False)}, int(spent), seen

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
        frame: Frame = Frame(),
        ahead_s: int = 0,
    ) -> tuple[list[Reservation], dict[UUID, int]]:
        """Reserve one send per request, atomically; `phones` are the tenant's available phones, `frame`
        where their slots may fall. `ahead_s`: how far ahead of now the sends are due."""
        if not requests:
            return [], {}
        raw = await self._reserve(
            keys=[], args=[self._argument(tenant_id, quota_date, phones, requests, frame, ahead_s)]
        )
        await self._acks.confirm()
        return _reserved(phones, requests, raw)

    @property
    def enqueues_with_reservation(self) -> bool:
        """Whether a route may reserve and enqueue in one script (`reserve_and_enqueue`): only when no
        replica must confirm the reservation first. With REDIS_MIN_REPLICA_ACKS = N > 0 a message must not
        be on a queue, where a sender can take it, before N replicas hold its count: a failover would
        lose the count of a message already sent, and the phone would pass its limit
        (tests/e2e/failure/test_failover.py found exactly that when the two went together)."""
        return self._acks.min_acks == 0

    async def reserve_and_enqueue(
        self,
        *,
        tenant_id: UUID,
        quota_date: date,
        phone: PhoneLimit,
        request: ReservationRequest,
        frame: Frame,
        ahead_s: int,
        job: SlottedJob,
    ) -> tuple[Reservation, bool | None]:
        """`reserve` of one request on one phone and, when it got the phone, `job` enqueued at its slot,
        atomically (_RESERVE_AND_ENQUEUE_LUA): the reservation, and True when the job was written, False
        when its id was taken, None when nothing was reserved (nor enqueued). Only while
        `enqueues_with_reservation`."""
        assert self.enqueues_with_reservation, "a reservation that replicas must confirm goes alone"
        argument = self._argument(tenant_id, quota_date, [phone], [request], frame, ahead_s)
        raw = await self._reserve_and_enqueue(keys=[], args=[argument, job.argument(self._expires_extra_ms)])
        await self._acks.confirm()
        [reservation], _ = _reserved([phone], [request], raw[:4])
        return reservation, bool(raw[4]) if len(raw) > 4 else None

    async def reserve_many(
        self, calls: Sequence[ReserveCall]
    ) -> list[tuple[list[Reservation], dict[UUID, int]]]:
        """`reserve` of several tenants' batches in one pipeline (each call atomic on its own, as
        `reserve`): per call, in order, what it reserved and its phones' counters after it."""
        asking = [call for call in calls if call.requests]
        if not asking:
            return [([], {}) for _ in calls]
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in asking:
                await self._reserve(
                    keys=[],
                    args=[self._argument(c.tenant_id, c.quota_date, c.phones, c.requests, c.frame, 0)],
                    client=pipe,
                )
            replies = iter(await pipe.execute())
        await self._acks.confirm()
        return [_reserved(c.phones, c.requests, next(replies)) if c.requests else ([], {}) for c in calls]

    def _argument(
        self,
        tenant_id: UUID,
        quota_date: date,
        phones: Sequence[PhoneLimit],
        requests: Sequence[ReservationRequest],
        frame: Frame,
        ahead_s: int,
    ) -> bytes:
        """The script's one argument (see _RESERVE_LUA)."""
        position = {phone.phone_id: index for index, phone in enumerate(phones, start=1)}
        return orjson.dumps(
            [
                self._ttl(ahead_s),
                frame.now_ms,
                frame.opens_ms,
                frame.closes_ms,
                frame.portfolio_limit or 0,
                int(PORTFOLIO_WINDOW.total_seconds() * 1000),
                quota_reservations_key(tenant_id, quota_date),
                pace_slots_key(tenant_id, quota_date),
                portfolio_key(tenant_id),
                [
                    [
                        str(p.phone_id),
                        p.daily_limit,
                        quota_key(p.phone_id, quota_date),
                        pace_key(p.phone_id, quota_date),
                    ]
                    for p in phones
                ],
                [
                    [
                        r.job_id,
                        position[r.phone_id],
                        "1" if r.fall_through else "2" if r.report_elsewhere else "0",
                        r.recipient or "",
                        r.gap_ms,
                        "1" if r.send_now else "0",
                    ]
                    for r in requests
                ],
            ]
        )


@dataclass(frozen=True, slots=True)
class ReserveCall:
    """The arguments of one `reserve`, for `reserve_many`."""

    tenant_id: UUID
    quota_date: date
    phones: Sequence[PhoneLimit]
    requests: Sequence[ReservationRequest]
    frame: Frame


def _reserved(
    phones: Sequence[PhoneLimit], requests: Sequence[ReservationRequest], raw: Sequence[int]
) -> tuple[list[Reservation], dict[UUID, int]]:
    """The script's reply: each request's reservation, then each phone's counter."""
    reservations = [
        _reservation(request, phones, raw[3 * n : 3 * n + 3]) for n, request in enumerate(requests)
    ]
    tail = raw[3 * len(requests) :]
    return reservations, {phone.phone_id: int(tail[n]) for n, phone in enumerate(phones)}


def _reservation(
    request: ReservationRequest, phones: Sequence[PhoneLimit], raw: Sequence[int]
) -> Reservation:
    chosen, reused, slot = (int(value) for value in raw)
    if not chosen and slot == _ELSEWHERE:
        return Reservation(request.job_id, None, False, elsewhere=True)
    if not chosen:
        return Reservation(request.job_id, None, False, shortfall=_SHORTFALL_OF[slot])
    return Reservation(request.job_id, phones[chosen - 1].phone_id, bool(reused), slot_ms=slot)
