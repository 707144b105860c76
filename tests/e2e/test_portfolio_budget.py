"""The portfolio budget under concurrency (issue 10): two worker processes run 4 dispatches and 40 routes
at once for one tenant, 3 phones and 100 WhatsApp leads, against a budget of 30 unique recipients in
24 h. Exactly 30 recipients get messages, whichever job reached them."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis

from src.client import OutreachClient
from src.domain.channels import normalize_phone
from src.names import ARQ_JOB_PREFIX, portfolio_key
from src.redis_io.codec import job_deserializer
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers

BUDGET = 30
LEADS = 100
ROUTES = 40


async def recipients_messaged(redis: Redis, number_of: dict[str, str | None]) -> set[str | None]:
    """The numbers of every WhatsApp message on a queue: dispatch's by their payload, route's by lead."""
    numbers = set()
    async for key in redis.scan_iter(match=ARQ_JOB_PREFIX + "*", count=1000):
        job_id = key.decode()[len(ARQ_JOB_PREFIX) :]
        if job_id.startswith(("wa:", "routed:")):
            payload = job_deserializer(await redis.get(key))["a"][0]
            numbers.add(payload.get("recipientPhone") or number_of[payload["leadId"]])
    return numbers


async def test_concurrent_dispatches_and_routes_message_exactly_the_budget(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    # Pacing off: the budget alone decides, whatever the hour TEST_NOW leaves in the day.
    tenant = await factory.tenant(**ALWAYS_OPEN, wa_portfolio_limit=BUDGET)
    phones = [await factory.phone(tenant) for _ in range(3)]
    leads = await factory.leads(tenant, LEADS)
    number_of = {
        str(lead): normalize_phone(
            await factory.scalar("SELECT telefon_principal FROM gold_companies WHERE id = :l", l=lead)
        )
        for lead in leads
    }
    rng = random.Random(10)

    async with workers.new("Settings") as first, workers.new("Settings") as second:
        await first.wait_healthy(redis)
        await second.wait_healthy(redis)
        dispatches = [client.dispatch(tenant_id=tenant, batch_size=25) for _ in range(4)]
        routes = [
            client.route(
                tenant_id=tenant,
                lead_id=rng.choice(leads),
                phone_id=rng.choice(phones),
                message_type="FOLLOWUP",
                payload={"text": "Revin"},
            )
            for _ in range(ROUTES)
        ]
        jobs = await asyncio.gather(*dispatches, *routes)
        results = [await job.result(timeout=60) for job in jobs]

    dispatched, routed = results[:4], results[4:]
    assert sum(r.dispatched_to_whatsapp for r in dispatched) + sum(r.routed for r in routed) >= BUDGET
    assert sum(r.skipped_portfolio_limit for r in dispatched) > 0
    assert any(not r.routed and r.reason.startswith("PORTFOLIO_LIMIT") for r in routed)
    messaged = await recipients_messaged(redis, number_of)
    assert len(messaged) == BUDGET
    assert {member.decode() for member in await redis.zrange(portfolio_key(tenant), 0, -1)} == messaged
