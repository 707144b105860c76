"""How much of each tenant's portfolio budget is used: its recipients of the last 24 h (portfolio_key,
which the reservation keeps), read for the operator (status, metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from redis.asyncio import Redis

from src.domain.senders import PORTFOLIO_WINDOW
from src.names import portfolio_key
from src.runtime.clock import epoch_ms


async def recipients_in_24h(redis: Redis, tenant_ids: Sequence[UUID], *, now: datetime) -> list[int]:
    """For each tenant, the recipients whose latest message is scheduled within the 24 h before `now`, or
    after it: one pipeline for all."""
    if not tenant_ids:
        return []
    since = epoch_ms(now - PORTFOLIO_WINDOW)
    async with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenant_ids:
            pipe.zcount(portfolio_key(tenant_id), f"({since}", "+inf")
        return [int(count) for count in await pipe.execute()]
