"""The evidence of every message (outreach_messages, GDPR art. 5(2)): one row per message enqueued, with the
basis it went out on, written with the journeys by dispatch and after the enqueue by route; append-only;
deleted after MESSAGE_RETENTION_DAYS, in bounded batches, by the ALL fan-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from src.contracts import RouterResult
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX
from src.redis_io.codec import loads
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.clock import as_slot
from tests.support.factories import CONSENT_EVIDENCE, Factory, tenant_with_phone
from tests.support.invariants import queued_outreach_jobs
from tests.support.jobs import checked, deps_with, follow_up, job_ctx, queued, run_dispatch
from tests.support.tenants import ALWAYS_OPEN

COLUMNS = "lead_id, channel, phone_id, queue, job_id, basis, basis_at, basis_source, scheduled_at"


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = await conn.execute(text(f"SELECT {COLUMNS} FROM outreach_messages ORDER BY id"))
        return [dict(row) for row in found.mappings()]


async def payload(redis: Redis, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = loads(await redis.get(ARQ_JOB_PREFIX + job_id))["a"][0]
    return job


@pytest.fixture
async def tenant(factory: Factory) -> UUID:
    return await tenant_with_phone(factory, phone_number="+40721000071")


async def test_dispatch_records_each_message_with_the_basis_of_its_channel(
    deps: Deps,
    factory: Factory,
    engine: AsyncEngine,
    redis: Redis,
    tenant: UUID,
    today: date,
    clock: FixedClock,
) -> None:
    phone = await factory.scalar("SELECT id FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant)
    whatsapp = await factory.lead(tenant)
    contract = {"email_lawful_basis": "EXISTING_CUSTOMER", "email_basis_source": "contract:RO-2025-117"}
    email = await factory.lead(tenant, company={"telefon_principal": None}, **contract)
    await factory.lead(tenant, company={"telefon_principal": None, "email_status": "invalid"})  # no channel

    dry = await run_dispatch(deps, tenant, dryRun=True)
    assert dry["dispatchedToWhatsApp"] == 1
    assert await rows(engine) == []

    await run_dispatch(deps, tenant)

    wa_job, email_job = f"wa:{tenant}:{whatsapp}:-:0:{today}", f"email:{tenant}:{email}:-:0:{today}"
    given = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert sorted(await rows(engine), key=lambda row: row["channel"]) == [
        {
            "lead_id": email,
            "channel": "EMAIL_COLD",
            "phone_id": None,
            "queue": "q:email:cold",
            "job_id": email_job,
            "basis": "EXISTING_CUSTOMER",
            "basis_at": given,
            "basis_source": "contract:RO-2025-117",
            "scheduled_at": clock.now,
        },
        {
            "lead_id": whatsapp,
            "channel": "WHATSAPP",
            "phone_id": phone,
            "queue": "q:wa:phone_71",
            "job_id": wa_job,
            "basis": "CONSENT",
            "basis_at": given,
            "basis_source": CONSENT_EVIDENCE["source"],
            "scheduled_at": as_slot(clock.now),
        },
    ]
    assert (await payload(redis, wa_job))["lawfulBasis"] == CONSENT_EVIDENCE
    assert (await payload(redis, email_job))["lawfulBasis"] == {
        "basis": "EXISTING_CUSTOMER",
        "at": "2026-01-15T09:00:00Z",
        "source": "contract:RO-2025-117",
    }
    assert await queued(redis, "q:wa:phone_71") == [wa_job]


async def test_a_tenant_whose_gate_is_off_records_that_there_was_no_basis(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN, allowed_lawful_bases=[])
    await factory.phone(tenant)
    await factory.lead(tenant, whatsapp_lawful_basis=None, whatsapp_basis_at=None, whatsapp_basis_source=None)

    result = await run_dispatch(deps, tenant)

    [job] = result["jobsCreated"]
    assert (await payload(redis, job["jobId"]))["lawfulBasis"] == {"basis": None, "at": None, "source": None}
    assert [(row["job_id"], row["basis"]) for row in await rows(engine)] == [(job["jobId"], None)]


async def test_route_records_its_message_once_whatever_the_retries(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, tenant: UUID, clock: FixedClock
) -> None:
    phone = await factory.scalar("SELECT id FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant)
    lead = await factory.lead(tenant)

    first = checked(RouterResult, await route(job_ctx(deps, job_id="router-7"), follow_up(lead, phone)))
    # The same router job again (arq's retry of a try whose result was lost): one row still.
    retried = checked(
        RouterResult, await route(job_ctx(deps, job_id="router-7", job_try=2), follow_up(lead, phone))
    )
    assert (first["enqueued"], retried["enqueued"], retried["routed"]) == (True, False, True)
    assert len(await rows(engine)) == 1
    # A try killed between its enqueue and its row (the row is gone: TRUNCATE passes the trigger): the
    # next try finds its message on the queue and writes the row.
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outreach_messages"))
    again = checked(
        RouterResult, await route(job_ctx(deps, job_id="router-7", job_try=3), follow_up(lead, phone))
    )
    assert (again["routed"], again["enqueued"]) == (True, False)
    assert await rows(engine) == [
        {
            "lead_id": lead,
            "channel": "WHATSAPP",
            "phone_id": phone,
            "queue": "q:wa:phone_71:followup",
            "job_id": "routed:router-7",
            "basis": "CONSENT",
            "basis_at": datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
            "basis_source": CONSENT_EVIDENCE["source"],
            "scheduled_at": clock.now,
        }
    ]
    assert (await payload(redis, "routed:router-7"))["lawfulBasis"] == CONSENT_EVIDENCE


async def lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        waiting = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting.scalar_one())


async def test_an_objection_while_route_runs_takes_its_message_back(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, tenant: UUID
) -> None:
    phone = await factory.scalar("SELECT id FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant)
    lead = await factory.lead(tenant)

    async with engine.connect() as objection:
        await objection.execute(
            text("UPDATE gold_lead_journey SET objected_at = now() WHERE lead_id = :l"), {"l": lead}
        )  # not committed yet: route reads the lead as it was, enqueues, then waits on the row to record
        running = asyncio.create_task(route(job_ctx(deps, job_id="router-9"), follow_up(lead, phone)))
        deadline = time.monotonic() + 5
        while not await lock_waits(engine):
            assert time.monotonic() < deadline, "route never waited for the objection's row lock"
            assert not running.done(), running
            await asyncio.sleep(0.02)
        assert await queued_outreach_jobs(redis) == 1  # on its queue, its row waiting for the lock
        await objection.commit()
    result = checked(RouterResult, await running)

    assert (result["routed"], result["enqueued"]) == (False, False)
    assert result["reason"].startswith("OBJECTED: ")
    assert await queued_outreach_jobs(redis) == 0
    assert not await redis.exists(ARQ_JOB_PREFIX + "routed:router-9")
    assert await rows(engine) == []


async def test_the_records_are_append_only(
    deps: Deps, factory: Factory, engine: AsyncEngine, tenant: UUID
) -> None:
    await factory.lead(tenant)
    await run_dispatch(deps, tenant)
    for statement in ("UPDATE outreach_messages SET basis = 'CONSENT'", "DELETE FROM outreach_messages"):
        with pytest.raises(DBAPIError, match="outreach_messages is append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    assert len(await rows(engine)) == 1


@pytest.fixture
async def small_batches(clock: FixedClock) -> AsyncIterator[Deps]:
    async with deps_with(clock, message_retention_batch=2) as built:
        yield built


async def test_the_fan_out_deletes_expired_records_a_bounded_batch_at_a_time(
    deps: Deps, small_batches: Deps, engine: AsyncEngine, tenant: UUID
) -> None:
    async with engine.begin() as conn:
        for age_days in (1097, 1200, 2000, 1095, 0):
            await conn.execute(
                text(
                    "INSERT INTO outreach_messages (tenant_id, lead_id, channel, queue, job_id, scheduled_at, "
                    "created_at) VALUES (:t, gen_random_uuid(), 'EMAIL_COLD', 'q:email:cold', :j, now(), "
                    "now() - make_interval(days => :d))"
                ),
                {"t": tenant, "j": f"email:{age_days}", "d": age_days},
            )

    await run_dispatch(small_batches, "ALL", job_id="tick-1")
    assert len(await rows(engine)) == 3  # two of the three past 1096 days
    await run_dispatch(small_batches, "ALL", job_id="tick-2")
    await run_dispatch(small_batches, "ALL", job_id="tick-3")
    assert sorted(row["job_id"] for row in await rows(engine)) == ["email:0", "email:1095"]
