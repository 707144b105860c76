"""The sender safeguards as an operator sees them: `phones add` starts a warm-up, `status` shows the
effective limit, the next free slot and the portfolio budget, `forecast` says when the backlog goes out.

The ops tool reads the host's clock (tests/support/commands.py), so these tests do too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from src.domain.quota import quota_date
from src.names import pace_key, portfolio_key, quota_key
from src.runtime.clock import epoch_ms
from src.runtime.deps import Deps
from tests.support.commands import cli
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN

ZONE = "Europe/Bucharest"


def today() -> date:
    return quota_date(datetime.now(UTC), ZONE)


async def test_phones_add_starts_the_warm_up_on_the_tenants_day(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant()
    added = await cli("phones", "add", "--tenant-id", str(tenant), "--number", "0722000101", "--json")
    assert added.code == 0, added
    reply: Any = added.json()
    assert reply["warmupStartedOn"] == today().isoformat()

    tuned = await cli(
        "phones", "add", "--tenant-id", str(tenant), "--number", "0722000102",
        "--warmup-initial-limit", "5", "--warmup-daily-increase", "3",
    )  # fmt: skip
    assert tuned.code == 0, tuned
    assert f"warm-up from {today()}" in tuned.out

    warm = await cli("phones", "add", "--tenant-id", str(tenant), "--number", "0722000103", "--warmed-up")
    assert warm.code == 0, warm
    assert "warmed up" in warm.out

    rows = await factory.scalar(
        "SELECT string_agg(row(right(phone_number, 3), warmup_started_on, warmup_initial_limit, "
        "warmup_daily_increase)::text, ' ' ORDER BY phone_number) FROM wa_phone_numbers WHERE tenant_id = :t",
        t=tenant,
    )
    assert rows == f"(101,{today()},20,10) (102,{today()},5,3) (103,,20,10)"


async def test_phones_add_refuses_warm_up_options_on_a_warmed_up_number(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant()
    refused = await cli(
        "phones", "add", "--tenant-id", str(tenant), "--number", "0722000104", "--warmed-up",
        "--warmup-initial-limit", "5",
    )  # fmt: skip
    assert refused.code == 2, refused
    assert "--warmed-up" in refused.err
    assert await factory.scalar("SELECT count(*) FROM wa_phone_numbers WHERE tenant_id = :t", t=tenant) == 0


async def test_status_shows_the_warm_up_the_next_slot_and_the_portfolio_budget(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    now = datetime.now(UTC)
    tenant = await factory.tenant(name="Ferma Warm SRL", timezone=ZONE, wa_portfolio_limit=250)
    new = await factory.phone(
        tenant, phone_number="+40722000201", warmup_started_on=today() - timedelta(days=2)
    )
    await factory.phone(tenant, phone_number="+40722000202", daily_limit=150)
    await redis.set(quota_key(new, today()), 7)
    next_slot = now.replace(microsecond=0) + timedelta(minutes=3)
    await redis.set(pace_key(new, today()), epoch_ms(next_slot))
    recent = {"+40700000001": now - timedelta(hours=1), "+40700000002": now - timedelta(hours=23)}
    stale = {"+40700000003": now - timedelta(hours=25)}
    await redis.zadd(portfolio_key(tenant), {n: epoch_ms(at) for n, at in (recent | stale).items()})

    result = await cli("status", "--tenant-id", str(tenant), "--json")
    assert result.code == 0, result
    report: Any = result.json()
    phones = {p["phoneNumber"]: p for p in report["phones"]}
    warming = phones["+40722000201"]
    assert (warming["dailyLimit"], warming["effectiveLimit"], warming["warmupDay"]) == (200, 40, 3)
    assert (warming["used"], warming["remaining"]) == (7, 33)
    assert warming["nextFreeSlot"] == next_slot.isoformat()
    warm = phones["+40722000202"]
    assert (warm["effectiveLimit"], warm["warmupDay"], warm["nextFreeSlot"]) == (150, None, None)
    assert report["portfolios"] == [
        {"tenantId": str(tenant), "tenantName": "Ferma Warm SRL", "used": 2, "limit": 250}
    ]

    text = await cli("status", "--tenant-id", str(tenant))
    assert text.code == 0, text
    assert "warming up, day 3 (limit 200)" in text.out
    assert "WhatsApp portfolio budget" in text.out


async def test_forecast_says_when_the_backlog_clears(deps: Deps, factory: Factory, redis: Redis) -> None:
    tenant = await factory.tenant(timezone=ZONE, **ALWAYS_OPEN)
    phone = await factory.phone(tenant, daily_limit=10)
    await redis.set(quota_key(phone, today()), 4)
    await factory.leads(tenant, 22, engagement_stage="CONTACTED_WA")  # WhatsApp beats e-mail
    for _ in range(3):
        await factory.lead(tenant, company={"hlr_reachable": False})  # e-mail only: EMAIL_COLD

    result = await cli("forecast", "--tenant-id", str(tenant), "--days", "4", "--json")
    assert result.code == 0, result
    report: Any = result.json()
    assert report["backlog"] == 25
    days = report["days"]
    assert [d["date"] for d in days] == [(today() + timedelta(days=n)).isoformat() for n in range(4)]
    assert [d["whatsappCapacity"] for d in days] == [6, 10, 10, 10]
    assert [d["dispatched"]["WHATSAPP"] for d in days] == [6, 10, 6, 0]
    assert days[0]["dispatched"]["EMAIL_COLD"] == 3
    assert [d["backlogLeft"] for d in days] == [16, 6, 0, 0]
    assert report["clearsOn"] == (today() + timedelta(days=2)).isoformat()

    text = await cli("forecast", "--tenant-id", str(tenant), "--days", "2")
    assert text.code == 0, text
    assert "█" in text.out
    assert "does not clear within 2 days: 6 left" in text.out


@pytest.mark.parametrize(
    ("args", "code", "complaint"),
    [
        (["--days", "91"], 2, "argument --days: 91 is out of range (1..90)"),
        (["--days", "0"], 2, "argument --days: 0 is out of range (1..90)"),
        ([], 1, "--tenant-id: tenant 00000000-0000-4000-8000-000000000001 not found"),
    ],
)
async def test_forecast_refuses_bad_input_naming_the_field(
    deps: Deps, args: list[str], code: int, complaint: str
) -> None:
    result = await cli("forecast", "--tenant-id", "00000000-0000-4000-8000-000000000001", *args)
    assert result.code == code, result
    assert complaint in result.err
    assert "Traceback" not in result.err


async def test_forecast_of_a_tenant_it_cannot_read_names_the_field(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(timezone="Mars/Olympus_Mons")
    result = await cli("forecast", "--tenant-id", str(tenant))
    assert result.code == 1, result
    assert f"tenant {tenant} cannot send: unknown timezone 'Mars/Olympus_Mons'" in result.err
    assert "Traceback" not in result.err
