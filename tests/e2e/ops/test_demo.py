"""`make demo` (scripts/demo.sh) end to end: services, migrations, seed, a real worker, the summary."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.ops.seed import DEMO_TENANT_ID
from src.runtime.deps import Deps
from tests.support.commands import Run, run
from tests.support.factories import Factory
from tests.support.services import TABLES, TEST_DATABASE_URL, TEST_REDIS_URL


async def demo(tmp_path: Path, **env: str) -> Run:
    return await run("bash", "scripts/demo.sh", timeout=110, DEMO_DIR=str(tmp_path / "demo"), **env)


def row(output: str, company: str) -> list[str]:
    """The decision-table row of a company, split into its columns."""
    for line in output.splitlines():
        if line.strip().startswith(company) and re.search(
            r"  (DISPATCHED|SKIPPED|HELD|NOT_DUE|OBJECTED)", line
        ):
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError(f"no decision row for {company}:\n{output}")


def assert_summary(output: str) -> None:
    assert "1. Seeded the demo tenant" in output
    assert "every day, 00:00-00:00 (all day), public holidays not skipped" in output
    assert "2. Started the worker: arq src.worker.Settings" in output
    assert "3. Dry run through the worker" in output
    assert "quota counters unchanged: yes" in output
    assert "eligible leads 12: 4 to WhatsApp, 3 to e-mail, 1 waiting for quota, 4 without a channel" in output
    assert "held for human review 1" in output

    assert row(output, "Lactate Bucovina SA")[1:4] == ["DISPATCHED", "WHATSAPP", "q:wa:phone_01"]
    assert row(output, "Lactate Bucovina SA")[-1] == "STICKY"
    assert row(output, "Vinăria Dealu Mare SRL")[1:3] == ["SKIPPED_QUOTA", "WHATSAPP"]
    assert row(output, "Vinăria Dealu Mare SRL")[-1] == "STICKY_QUOTA_EXHAUSTED"
    assert row(output, "Transilvania Logistic SRL")[-1] == "FALLBACK_STICKY_UNAVAILABLE"
    assert row(output, "Agroferma Someșul SRL")[-1] == "NEW_PHONE"
    assert row(output, "Moara Banatului SRL")[1:4] == ["DISPATCHED", "EMAIL_COLD", "q:email:cold"]
    assert row(output, "Construcții Olt Invest SRL")[1:4] == ["DISPATCHED", "EMAIL_WARM", "q:email:warm"]
    assert row(output, "Panificația Dunărea SRL")[2] == "EMAIL_COLD"
    assert row(output, "Mobila Maramureș SRL")[1::4] == ["SKIPPED_NO_CHANNEL", "OPTED_OUT"]
    assert row(output, "Depozitul de Cereale Argeș SRL")[-1] == "NO_VERIFIED_CONTACT"
    assert row(output, "Ferma Avicolă Bărăgan SRL")[1] == "HELD_FOR_REVIEW"
    assert row(output, "Tipografia Crișana SRL")[1] == "NOT_DUE"
    # The law (issue 11): no basis recorded, an address under a suppressed domain, an objection.
    assert row(output, "Ferma Dobrogea SRL")[1::4] == ["SKIPPED_NO_CHANNEL", "NO_LAWFUL_BASIS"]
    assert row(output, "Agro Vest Distribuție SRL")[1::4] == ["SKIPPED_NO_CHANNEL", "SUPPRESSED"]
    assert row(output, "Cooperativa Agricolă Olt SRL")[1] == "OBJECTED"
    assert "evidence: 7 messages recorded with their lawful basis" in output

    assert "5. What landed in each queue" in output
    assert "q:email:cold: 2 jobs" in output
    assert "send-email-warm  Construcții Olt Invest SRL -> ofertare@oltinvest.ro" in output
    assert re.search(
        r"send-whatsapp-initial  Lactate Bucovina SA -> \+40746223344  scheduled \d\d:\d\d:\d\d", output
    )
    # Three new contacts on the Iași phone, paced: each at least wa_min_gap_s (60 s) after the one before.
    paced = re.findall(r"send-whatsapp-initial  .* -> \+\d+  scheduled (\d\d):(\d\d):(\d\d)", output)
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in paced[1:4]]
    assert len(seconds) == 3
    assert all(later - earlier >= 60 for earlier, later in itertools.pairwise(seconds)), paced
    assert "6. Each phone's quota today (Europe/Bucharest" in output
    assert re.search(r"\+40722100401\s+q:wa:phone_01\s+ACTIVE\s+37\s+38\s+200\s+162", output)
    assert re.search(r"\+40733200402\s+q:wa:phone_02\s+ACTIVE\s+40\s+40\s+40\s+0", output)
    assert re.search(r"\+40744300403\s+q:wa:phone_03\s+ACTIVE\s+85\s+88\s+250\s+162", output)
    assert re.search(r"\+40755400404\s+q:wa:phone_04\s+BANNED\s+0\s+0\s+200\s+-", output)
    # A number on day 3 of its warm-up: 40 of its 150 today, 12 used.
    assert re.search(
        r"\+40756500405\s+q:wa:phone_05\s+ACTIVE\s+12\s+12\s+40\s+28\s+warming up, day 3 \(limit 150\)",
        output,
    )
    assert "7. Stopped the worker (SIGTERM): exit code 0" in output


async def test_make_demo_on_the_configured_services(
    deps: Deps, factory: Factory, redis: Redis, tmp_path: Path
) -> None:
    result = await demo(tmp_path, DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL)
    assert result.code == 0, result.out + result.err
    assert_summary(result.out)
    assert "throwaway" not in result.out
    assert "The demo tenant stays in your database" in result.out
    # What the summary says is what the services hold.
    assert (
        await factory.scalar("SELECT count(*) FROM gold_lead_journey WHERE tenant_id = :t", t=DEMO_TENANT_ID)
        == 15
    )
    assert (
        await factory.scalar("SELECT count(*) FROM outreach_messages WHERE tenant_id = :t", t=DEMO_TENANT_ID)
        == 7
    )
    assert await redis.zcard("q:email:cold") == 2
    assert await redis.zcard("q:wa:phone_01") == 1

    again = await demo(tmp_path, DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL)
    assert again.code == 0, again.out + again.err
    assert_summary(again.out)  # a second run resets the demo tenant and shows the same story
    assert await redis.zcard("q:email:cold") == 2
    assert (
        await factory.scalar("SELECT count(*) FROM outreach_messages WHERE tenant_id = :t", t=DEMO_TENANT_ID)
        == 7
    )


async def test_a_demo_on_a_new_database_ignores_what_an_earlier_demo_left_in_redis(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = await demo(tmp_path, DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL)
    assert first.code == 0, first.out + first.err
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))  # a new database, the same Redis
    second = await demo(tmp_path, DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL)
    assert second.code == 0, second.out + second.err
    assert_summary(second.out)


async def test_make_demo_starts_throwaway_servers_when_the_configured_ones_do_not_answer(
    deps: Deps, tmp_path: Path
) -> None:
    result = await demo(
        tmp_path,
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/cerniq_demo",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert result.code == 0, result.out + result.err
    assert "DATABASE_URL does not answer: using a throwaway PostgreSQL instead" in result.out
    assert "starting a throwaway PostgreSQL" in result.out
    assert "starting a throwaway Redis" in result.out
    assert_summary(result.out)
    assert "stopped the throwaway PostgreSQL" in result.out
    assert "stopped the throwaway Redis" in result.out
    assert not (tmp_path / "demo" / "postgres").exists()


async def test_make_demo_says_what_to_install_when_nothing_can_run(deps: Deps, tmp_path: Path) -> None:
    result = await demo(
        tmp_path,
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/cerniq_demo",
        REDIS_URL="redis://127.0.0.1:1/0",
        PG_BIN=str(tmp_path / "no-postgres"),
        REDIS_SERVER=str(tmp_path / "no-redis-server"),
        DOCKER=str(tmp_path / "no-docker"),
    )
    assert result.code == 1
    assert "could not reach or start PostgreSQL and Redis" in result.err
    assert "sudo apt-get install postgresql redis-server" in result.err
    assert "brew install postgresql@15 redis" in result.err
    assert "https://docs.docker.com/engine/install/" in result.err
