"""The sender safeguards' gauges (src/runtime/metrics.py), sampled from their sources of truth while the
/metrics endpoint is on: each phone's effective limit today (warm-up included; the rows), and each
tenant's portfolio budget used (the recipients of the last 24 h in Redis). A sample is one statement and
one Redis pipeline, every SENDER_GAUGES_EVERY_S; one that fails is logged and tried again at the next."""

from __future__ import annotations

import asyncio
from datetime import datetime

from loguru import logger

from src.db import queries
from src.domain.quota import quota_date
from src.redis_io.portfolio_use import recipients_in_24h
from src.runtime import metrics
from src.runtime.deps import Deps

SENDER_GAUGES_EVERY_S = 30.0


async def sample(deps: Deps, now: datetime) -> None:
    async with deps.pg.acquire() as conn:
        phones = await queries.sender_phones(conn, tenant_id=None)
    limits = {p.tenant_id: p.tenant_portfolio_limit for p in phones}
    for phone in phones:
        try:
            day = quota_date(now, phone.tenant_timezone)
        except ValueError:  # an unknown timezone: `cerniq-ops status` names the tenant
            continue
        metrics.set_effective_limit(str(phone.id), str(phone.tenant_id), phone.effective_limit(day))
    used = await recipients_in_24h(deps.redis, list(limits), now=now)
    for (tenant_id, budget), count in zip(limits.items(), used, strict=True):
        metrics.set_portfolio(str(tenant_id), count, budget)


async def keep_sampling(deps: Deps, every_s: float = SENDER_GAUGES_EVERY_S) -> None:
    """Sample until cancelled (the worker's shutdown)."""
    while True:
        try:
            await sample(deps, deps.clock())
        except Exception as exc:  # PostgreSQL or Redis away: the jobs report that; the gauges wait
            logger.warning("sender gauges not sampled: {}", exc)
        await asyncio.sleep(every_s)
