"""Which WhatsApp phone serves a lead: sticky first, then by remaining daily quota."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol, TypeVar
from uuid import UUID

from src.contracts import AllocationType
from src.domain.quota import remaining


class AllocationReason(StrEnum):
    STICKY = "STICKY"
    STICKY_QUOTA_EXHAUSTED = "STICKY_QUOTA_EXHAUSTED"
    NEW_PHONE = "NEW_PHONE"
    FALLBACK_STICKY_UNAVAILABLE = "FALLBACK_STICKY_UNAVAILABLE"
    NO_PHONE_WITH_QUOTA = "NO_PHONE_WITH_QUOTA"


class PhoneState(NamedTuple):
    """A phone as the allocator sees it: its row plus today's quota counter. (A named tuple: jobs make
    one per phone of the tenant, and a tuple is several times cheaper to make than a frozen dataclass.)"""

    id: UUID
    tenant_id: UUID
    status: str
    is_enabled: bool
    daily_limit: int
    used_today: int
    queue_slot: str

    @property
    def remaining(self) -> int:
        return remaining(self.daily_limit, self.used_today)


class PhoneStatus(Protocol):
    """What availability depends on: a PhoneState, or a phone row before today's counter is read."""

    @property
    def id(self) -> UUID: ...
    @property
    def tenant_id(self) -> UUID: ...
    @property
    def status(self) -> str: ...
    @property
    def is_enabled(self) -> bool: ...


P = TypeVar("P", bound=PhoneStatus)


def is_available(phone: PhoneStatus, tenant_id: UUID) -> bool:
    """The one definition of an available phone: the tenant's own, ACTIVE and enabled."""
    return phone.tenant_id == tenant_id and phone.status == "ACTIVE" and phone.is_enabled


def deciding_counters(
    *, tenant_id: UUID, sticky_phone_id: UUID | None, phones: Sequence[P], prefer_existing: bool
) -> Sequence[P]:
    """The phones `allocate` looks at, and whose quota counters it reads: the sticky phone alone when it
    is kept (its counter only decides STICKY or STICKY_QUOTA_EXHAUSTED), otherwise the available ones
    and the sticky phone (to see that it is not)."""
    if prefer_existing and sticky_phone_id is not None:
        for phone in phones:
            if phone.id == sticky_phone_id and is_available(phone, tenant_id):
                return [phone]
    return [p for p in phones if p.id == sticky_phone_id or is_available(p, tenant_id)]


@dataclass(frozen=True, slots=True)
class Allocation:
    phone_id: UUID | None
    kind: AllocationType | None
    reason: AllocationReason


def allocate(
    *,
    tenant_id: UUID,
    sticky_phone_id: UUID | None,
    phones: Sequence[PhoneState],
    prefer_existing: bool,
    rng: random.Random,
) -> Allocation:
    """One lead, as `allocate_phone` sees it.

    A new phone is drawn at random with weights equal to remaining quota. Fifty concurrent jobs reading
    the same counters then spread across phones in proportion to their room, where "the one with the most
    remaining" would send all of them to the same phone.
    """
    sticky = next((p for p in phones if p.id == sticky_phone_id), None) if sticky_phone_id else None
    sticky_alive = sticky is not None and is_available(sticky, tenant_id)
    if prefer_existing and sticky is not None and sticky_alive:
        reason = AllocationReason.STICKY if sticky.remaining else AllocationReason.STICKY_QUOTA_EXHAUSTED
        return Allocation(sticky.id, AllocationType.STICKY, reason)

    # One pass over the phones (a job draws among all of its tenant's, per lead): room > 0 is remaining.
    candidates, weights = [], []
    for phone in phones:
        room = phone.daily_limit - phone.used_today
        if room > 0 and is_available(phone, tenant_id):
            candidates.append(phone)
            weights.append(room)
    if not candidates:
        return Allocation(None, None, AllocationReason.NO_PHONE_WITH_QUOTA)
    chosen = rng.choices(candidates, weights=weights)[0]
    if sticky_phone_id is not None and not sticky_alive:
        return Allocation(chosen.id, AllocationType.FALLBACK, AllocationReason.FALLBACK_STICKY_UNAVAILABLE)
    return Allocation(chosen.id, AllocationType.NEW, AllocationReason.NEW_PHONE)


class BatchAllocator:
    """Phones for a batch of leads in one dispatch, spending a local copy of the remaining quota.

    Within one batch the choice is deterministic (most remaining first), which spreads the batch evenly;
    the Redis reservation that follows is what makes the quota hold across concurrent batches.
    """

    def __init__(self, tenant_id: UUID, phones: Iterable[PhoneState]) -> None:
        self._tenant_id = tenant_id
        self._phones = {p.id: p for p in phones}
        self._available = [p for p in self._phones.values() if is_available(p, tenant_id)]
        self._remaining = {p.id: p.remaining for p in self._available}
        # Max-heap of (-remaining, position, phone): the phone with the most room, the first listed among
        # equals, without scanning every phone for every lead. Spending pushes the phone's new entry; the
        # older ones are stale (more room than the phone has) and are dropped when they surface.
        self._position = {p.id: n for n, p in enumerate(self._available)}
        self._most_room = [(-p.remaining, n, p.id) for n, p in enumerate(self._available)]
        heapq.heapify(self._most_room)

    @property
    def has_available_phone(self) -> bool:
        return bool(self._available)

    def remaining(self, phone_id: UUID) -> int:
        return self._remaining.get(phone_id, 0)

    def take(self, sticky_phone_id: UUID | None, already_reserved: UUID | None = None) -> Allocation:
        """The phone for one more lead. `already_reserved`: a phone an earlier try of the same job id
        reserved, already counted in the quota snapshot, so it is kept without spending room again."""
        if already_reserved in self._remaining:
            if sticky_phone_id == already_reserved:
                return Allocation(already_reserved, AllocationType.STICKY, AllocationReason.STICKY)
            if sticky_phone_id is None:
                return Allocation(already_reserved, AllocationType.NEW, AllocationReason.NEW_PHONE)
            return Allocation(
                already_reserved, AllocationType.FALLBACK, AllocationReason.FALLBACK_STICKY_UNAVAILABLE
            )
        sticky = self._phones.get(sticky_phone_id) if sticky_phone_id else None
        if sticky is not None and is_available(sticky, self._tenant_id):
            if self._remaining[sticky.id] <= 0:
                return Allocation(sticky.id, AllocationType.STICKY, AllocationReason.STICKY_QUOTA_EXHAUSTED)
            self._spend(sticky.id)
            return Allocation(sticky.id, AllocationType.STICKY, AllocationReason.STICKY)

        best = self._phone_with_most_room()
        if best is None or self._remaining[best] <= 0:
            return Allocation(None, None, AllocationReason.NO_PHONE_WITH_QUOTA)
        self._spend(best)
        if sticky_phone_id is not None:
            return Allocation(best, AllocationType.FALLBACK, AllocationReason.FALLBACK_STICKY_UNAVAILABLE)
        return Allocation(best, AllocationType.NEW, AllocationReason.NEW_PHONE)

    def _spend(self, phone_id: UUID) -> None:
        left = self._remaining[phone_id] - 1
        self._remaining[phone_id] = left
        heapq.heappush(self._most_room, (-left, self._position[phone_id], phone_id))

    def _phone_with_most_room(self) -> UUID | None:
        heap = self._most_room
        while heap:
            room, _, phone_id = heap[0]
            if -room == self._remaining[phone_id]:
                return phone_id
            heapq.heappop(heap)
        return None
