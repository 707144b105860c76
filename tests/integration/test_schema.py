"""The schema's own rules: queue slots, and the SQL form of "available phone" agreeing with the domain."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from src.db import queries
from src.domain.allocation import is_available
from src.runtime.deps import Deps
from tests.support.factories import Factory


async def slot_of(engine: AsyncEngine, number: str) -> str:
    async with engine.connect() as conn:
        slot: str = (
            await conn.execute(
                text("SELECT queue_slot FROM wa_phone_numbers WHERE phone_number = :n"), {"n": number}
            )
        ).scalar_one()
    return slot


async def test_a_phone_takes_its_last_two_digits_then_a_longer_suffix(
    factory: Factory, engine: AsyncEngine
) -> None:
    tenant, other = await factory.tenant(), await factory.tenant()
    await factory.phone(tenant, phone_number="+40721000107")
    await factory.phone(other, phone_number="+40722000207")  # another tenant: slots are unique globally
    await factory.phone(tenant, phone_number="+40723000207")
    await factory.phone(tenant, phone_number="+40724000299", queue_slot="custom-1")

    assert await slot_of(engine, "+40721000107") == "07"
    assert await slot_of(engine, "+40722000207") == "0207"
    assert await slot_of(engine, "+40723000207") == "40723000207"
    assert await slot_of(engine, "+40724000299") == "custom-1"


async def test_a_taken_slot_or_number_is_refused(factory: Factory) -> None:
    tenant = await factory.tenant()
    await factory.phone(tenant, phone_number="+40721000311")
    with pytest.raises(IntegrityError, match="uq_wa_phone_numbers_queue_slot"):
        await factory.phone(tenant, phone_number="+40721000399", queue_slot="11")
    with pytest.raises(IntegrityError, match="uq_wa_phone_numbers_phone_number"):
        await factory.phone(tenant, phone_number="+40721000311")
    with pytest.raises(IntegrityError, match="ck_wa_phone_numbers_phone_number_e164"):
        await factory.phone(tenant, phone_number="0721 000 312")


async def test_concurrent_registrations_ending_alike_get_distinct_slots(
    factory: Factory, engine: AsyncEngine
) -> None:
    tenant = await factory.tenant()
    numbers = [f"+4072{n}00055" for n in range(1, 9)]
    await asyncio.gather(*(factory.phone(tenant, phone_number=number) for number in numbers))
    slots = [await slot_of(engine, number) for number in numbers]
    assert len(set(slots)) == len(slots)
    assert "55" in slots


async def test_the_sql_and_the_domain_agree_on_available_phones(factory: Factory, deps: Deps) -> None:
    tenant = await factory.tenant()
    for n, (status, enabled) in enumerate(itertools.product(("ACTIVE", "PAUSED", "BANNED"), (True, False))):
        await factory.phone(tenant, phone_number=f"+4072900{n:04d}", status=status, is_enabled=enabled)
    async with deps.pg.acquire() as conn:
        rows = await queries.tenant_phones(conn, tenant_id=tenant)
        in_sql = {
            row["id"]
            for row in await conn.fetch(
                f"SELECT p.id FROM wa_phone_numbers p WHERE p.tenant_id = $1 AND {queries.AVAILABLE_PHONE_SQL}",
                tenant,
            )
        }
    in_domain = {row.id for row in rows if is_available(row.state(0, date(2026, 11, 25)), tenant)}
    assert in_sql == in_domain
    assert len(in_domain) == 1
