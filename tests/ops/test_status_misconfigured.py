"""A tenant whose timezone is unknown has no quota day: the commands that show phones' quota today say so
for that tenant, in the table and in --json, and go on with the others. No traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from src.domain.quota import quota_date
from src.names import quota_key
from src.runtime.deps import Deps
from tests.support.commands import Run, cli
from tests.support.factories import Factory

BAD_ZONE = "Mars/Olympus_Mons"
PROBLEM = f"unknown timezone {BAD_ZONE!r}"


async def two_tenants(factory: Factory, redis: Redis) -> None:
    good = await factory.tenant(name="Lactate Bucovina SA", timezone="Europe/Bucharest")
    bad = await factory.tenant(name="Ferma Marte SRL", timezone=BAD_ZONE)
    phone = await factory.phone(good, phone_number="+40722000011", daily_limit=50)
    await factory.phone(bad, phone_number="+40722000022")
    # The ops tool reads the host's clock, not the test's (tests/support/commands.py): its quota day.
    await redis.set(quota_key(phone, quota_date(datetime.now(UTC), "Europe/Bucharest")), 7)


def assert_one_clean_run(result: Run) -> None:
    assert result.code == 0, result
    assert "Traceback" not in result.err
    assert result.err == ""


async def test_status_shows_the_tenant_misconfigured_and_the_others_as_usual(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    await two_tenants(factory, redis)

    text = await cli("status")
    assert_one_clean_run(text)
    assert "+40722000011" in text.out
    assert "+40722000022" in text.out
    assert "Ferma Marte SRL" in text.out
    assert PROBLEM in text.out

    as_json = await cli("status", "--json")
    assert_one_clean_run(as_json)
    report: Any = as_json.json()
    phones = {p["phoneNumber"]: p for p in report["phones"]}
    assert (phones["+40722000011"]["used"], phones["+40722000011"]["remaining"]) == (7, 43)
    assert phones["+40722000011"]["problem"] is None
    bad = phones["+40722000022"]
    assert (bad["quotaDate"], bad["used"], bad["remaining"]) == (None, None, None)
    assert bad["problem"] == PROBLEM
    [misconfigured] = report["misconfiguredTenants"]
    assert (misconfigured["tenantName"], misconfigured["problem"]) == ("Ferma Marte SRL", PROBLEM)


async def test_phones_list_goes_on_past_the_misconfigured_tenant(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    await two_tenants(factory, redis)

    text = await cli("phones", "list")
    assert_one_clean_run(text)
    assert "+40722000011" in text.out
    assert PROBLEM in text.out

    as_json = await cli("phones", "list", "--json")
    assert_one_clean_run(as_json)
    listed: Any = as_json.json()
    assert {p["phoneNumber"]: p["problem"] for p in listed} == {"+40722000011": None, "+40722000022": PROBLEM}
