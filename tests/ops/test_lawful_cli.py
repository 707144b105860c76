"""`cerniq-ops suppress | basis | object | audit` as an operator runs them: real processes, real services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from src.contracts import RouterResult
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.commands import cli
from tests.support.factories import Factory
from tests.support.jobs import checked, deps_with, follow_up, job_ctx, run_dispatch
from tests.support.tenants import ALWAYS_OPEN


async def count(factory: Factory, table: str) -> int:
    return int(await factory.scalar(f"SELECT count(*) FROM {table}"))


async def test_suppress_add_list_remove(factory: Factory) -> None:
    tenant = await factory.tenant()
    added = await cli("suppress", "add", "--domain", "*.Agro.RO", "--global", "--reason", "asked by phone")
    again = await cli("suppress", "add", "--domain", "agro.ro", "--global")
    mine = await cli(
        "suppress", "add", "--phone", "0722 123 456", "--tenant-id", str(tenant), "--channel", "WHATSAPP"
    )
    bad = await cli("suppress", "add", "--email", "office@", "--tenant-id", str(tenant))
    unknown = await cli(
        "suppress", "add", "--email", "a@b.ro", "--tenant-id", "6a1b2c3d-0000-4000-8000-00000000dead"
    )

    assert (added.code, again.code, mine.code) == (0, 0, 0), (added, again, mine)
    assert "agro.ro suppressed on ALL for every tenant: added" in added.out
    assert "already there" in again.out
    assert (bad.code, unknown.code) == (2, 1)
    assert "not an e-mail address: 'office@'" in bad.err
    assert "not found" in unknown.err

    listed = await cli("suppress", "list", "--tenant-id", str(tenant), "--with-global", "--json")
    assert [(e["tenantId"], e["kind"], e["value"], e["channel"]) for e in listed.json()] == [  # type: ignore[union-attr]
        (None, "DOMAIN", "agro.ro", "ALL"),
        (str(tenant), "PHONE", "+40722123456", "WHATSAPP"),
    ]
    removed = await cli("suppress", "remove", "--domain", "AGRO.ro", "--global")
    missing = await cli("suppress", "remove", "--domain", "agro.ro", "--global")
    assert (removed.code, missing.code) == (0, 1)
    assert await count(factory, "suppressions") == 1


async def test_suppress_import_writes_thousands_of_rows_in_one_go(factory: Factory, tmp_path: Path) -> None:
    tenant = await factory.tenant()
    lines = ["kind,value,channel,reason"]
    lines += [f"EMAIL,Contact{n}@Firma{n % 97}.ro,,import 2026-11" for n in range(4000)]
    lines += [f"PHONE,07{n:08d},WHATSAPP," for n in range(22_000_000, 22_001_000)]
    lines += ["DOMAIN,concurent.ro,EMAIL,competitor", "EMAIL,contact1@firma1.ro,,duplicate of line 3"]
    csv = tmp_path / "suppressions.csv"
    csv.write_text("\n".join(lines) + "\n")

    result = await cli("suppress", "import", str(csv), "--tenant-id", str(tenant))

    assert result.code == 0, result
    assert "5002 entries" in result.out
    assert "5001 new, 1 already there" in result.out
    assert await count(factory, "suppressions") == 5001


async def test_a_csv_with_bad_lines_writes_nothing_and_names_every_one(
    factory: Factory, tmp_path: Path
) -> None:
    tenant = await factory.tenant()
    lead = await factory.lead(tenant, whatsapp_lawful_basis=None)
    suppressions = tmp_path / "suppressions.csv"
    suppressions.write_text(
        "kind,value,channel\nEMAIL,ok@agro.ro,\nEMAIL,not-an-address,\nDOMAIN,ro,ALL\nPHONE,+40722123456,SMS\n"
        "FAX,0264111222,\nPHONE,0264 111 222,\n"
    )
    bases = tmp_path / "bases.csv"
    bases.write_text(
        "lead_id,channel,basis,source,at\n"
        f"{lead},WHATSAPP,CONSENT,form:https://agro.example,2026-02-01T10:00:00+02:00\n"
        f"{lead},SMS,CONSENT,form,\n"
        f"{lead},EMAIL,OPT_IN,form,\n"
        f"{lead},EMAIL,CONSENT,,\n"
        "42,EMAIL,CONSENT,form,\n"
        f"{lead},EMAIL,CONSENT,form,2030-01-01T00:00:00Z\n"
        f"{lead},WHATSAPP,EXISTING_CUSTOMER,contract:7,\n"
    )

    refused = await cli("suppress", "import", str(suppressions), "--global")
    refused_bases = await cli("basis", "import", str(bases), "--tenant-id", str(tenant))

    assert refused.code == 1
    assert "4 bad line(s), nothing written" in refused.err
    for line in (
        "line 3: not an e-mail address",
        "line 4: not a domain",
        "line 5: channel 'SMS'",
        "line 6: kind 'FAX'",
    ):
        assert line in refused.err
    assert await count(factory, "suppressions") == 0

    assert refused_bases.code == 1
    assert "6 bad line(s), nothing written" in refused_bases.err
    for line in (
        "line 3: channel 'SMS'",
        "line 4: basis 'OPT_IN'",
        "line 5: source is empty",
        "line 6: lead_id '42' is not a UUID",
        "line 7: at 2030-01-01T00:00:00Z is in the future",
        f"line 8: lead {lead} WHATSAPP is also on line 2",
    ):
        assert line in refused_bases.err
    assert (await factory.journey(tenant, lead))["whatsapp_lawful_basis"] is None


async def test_basis_set_and_import_record_the_evidence(factory: Factory, tmp_path: Path) -> None:
    tenant = await factory.tenant()
    one, two = await factory.lead(tenant), await factory.lead(tenant)
    stranger = "6a1b2c3d-0000-4000-8000-00000000beef"

    put = await cli(
        "basis", "set", "--tenant-id", str(tenant), "--lead-id", str(one), "--channel", "EMAIL",
        "--basis", "EXISTING_CUSTOMER", "--source", "contract:RO-117", "--at", "2025-06-01T09:00:00Z",
    )  # fmt: skip
    csv = tmp_path / "bases.csv"
    csv.write_text(
        f"lead_id,channel,basis,source\n{two},WHATSAPP,LEGITIMATE_INTEREST,call:2026-11-02\n"
        f"{two},EMAIL,CONSENT,form:x\n{stranger},EMAIL,CONSENT,form:x\n"
    )
    unknown = await cli("basis", "import", str(csv), "--tenant-id", str(tenant))
    csv.write_text(f"lead_id,channel,basis,source\n{two},WHATSAPP,LEGITIMATE_INTEREST,call:2026-11-02\n")
    loaded = await cli("basis", "import", str(csv), "--tenant-id", str(tenant))

    assert put.code == 0, put
    journey = await factory.journey(tenant, one)
    assert (journey["email_lawful_basis"], journey["email_basis_source"]) == (
        "EXISTING_CUSTOMER",
        "contract:RO-117",
    )
    assert journey["email_basis_at"].isoformat() == "2025-06-01T09:00:00+00:00"
    assert journey["whatsapp_lawful_basis"] == "CONSENT"  # the other channel's stays
    assert unknown.code == 1
    assert f"line 4: lead {stranger} not found for tenant {tenant}" in unknown.err
    assert loaded.code == 0, loaded
    journey = await factory.journey(tenant, two)
    assert (journey["whatsapp_lawful_basis"], journey["email_lawful_basis"]) == (
        "LEGITIMATE_INTEREST",
        "CONSENT",
    )


async def test_basis_allow_moves_a_tenant_and_says_what_it_holds_back(factory: Factory) -> None:
    tenant = await factory.tenant(allowed_lawful_bases=[])
    await factory.lead(tenant, whatsapp_lawful_basis=None, email_lawful_basis=None)
    await factory.lead(tenant, whatsapp_lawful_basis="LEGITIMATE_INTEREST", email_lawful_basis=None)
    await factory.lead(tenant)

    dry = await cli(
        "basis", "allow", "--tenant-id", str(tenant), "--bases", "CONSENT", "EXISTING_CUSTOMER", "--dry-run"
    )
    assert await factory.scalar("SELECT allowed_lawful_bases FROM tenants WHERE id = :t", t=tenant) == []
    done = await cli("basis", "allow", "--tenant-id", str(tenant), "--bases", "EXISTING_CUSTOMER", "CONSENT")

    assert (dry.code, done.code) == (0, 0)
    assert "2 of its 3 leads in a due stage have no allowed basis" in dry.out
    allowed = await factory.scalar("SELECT allowed_lawful_bases FROM tenants WHERE id = :t", t=tenant)
    assert allowed == ["CONSENT", "EXISTING_CUSTOMER"]


async def redis_state(redis: Redis) -> dict[str, Any]:
    """Every key with its value: strings, hashes, sorted sets (members and scores)."""
    state: dict[str, Any] = {}
    async for raw in redis.scan_iter(count=1000):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if kind == "string":
            state[key] = await redis.get(key)
        elif kind == "hash":
            state[key] = await redis.hgetall(key)  # type: ignore[misc]
        elif kind == "zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
    return state


async def test_an_objection_withdraws_the_lead_s_waiting_messages_and_nothing_else(
    deps: Deps, factory: Factory, redis: Redis, engine: AsyncEngine
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000081")
    objector, other = await factory.lead(tenant), await factory.lead(tenant)
    emailed = await factory.lead(tenant, company={"telefon_principal": None})
    await run_dispatch(deps, tenant)
    for n, lead in enumerate((objector, other)):
        checked(RouterResult, await route(job_ctx(deps, job_id=f"router-{n}"), follow_up(lead, phone)))
    before = await redis_state(redis)
    journeys = {lead: await factory.journey(tenant, lead) for lead in (objector, other, emailed)}

    result = await cli("object", "--tenant-id", str(tenant), "--lead-id", str(objector), "--json")

    assert result.code == 0, result
    report: dict[str, Any] = result.json()  # type: ignore[assignment]
    theirs = {f"{ARQ_JOB_PREFIX}{job['jobId']}" for job in report["jobs"]}
    assert [job["outcome"] for job in report["jobs"]] == ["WITHDRAWN", "WITHDRAWN"]
    assert len(theirs) == 2
    after = await redis_state(redis)
    expected = {key: value for key, value in before.items() if key not in theirs}
    for key, value in expected.items():
        if isinstance(value, list):  # the queues lose exactly the lead's members
            expected[key] = [
                (m, s) for m, s in value if ARQ_JOB_PREFIX.encode() + m not in {t.encode() for t in theirs}
            ]
    assert after == expected
    journey = await factory.journey(tenant, objector)
    assert journey["objected_at"] is not None
    assert {k: v for k, v in journey.items() if k != "objected_at"} == {
        k: v for k, v in journeys[objector].items() if k != "objected_at"
    }
    for lead in (other, emailed):
        assert await factory.journey(tenant, lead) == journeys[lead]

    again = await cli("object", "--tenant-id", str(tenant), "--lead-id", str(objector), "--json")
    assert again.json()["objectedAt"] == report["objectedAt"]  # type: ignore[index]
    assert [job["outcome"] for job in again.json()["jobs"]] == ["NOT_WAITING", "NOT_WAITING"]  # type: ignore[index]


@pytest.fixture
async def pausing_after_commit(clock: FixedClock) -> AsyncIterator[Deps]:
    async with deps_with(clock, chaos_pause_at="after_commit", chaos_pause_s=3.0) as built:
        yield built


async def test_an_objection_reaches_a_batch_committed_but_not_yet_enqueued(
    deps: Deps, pausing_after_commit: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant, phone_number="+40721000091")
    objector, other = await factory.lead(tenant), await factory.lead(tenant)
    dispatching = asyncio.create_task(run_dispatch(pausing_after_commit, tenant))
    while not await factory.scalar("SELECT count(*) FROM dispatch_outbox"):  # committed, pausing
        assert not dispatching.done(), dispatching
        await asyncio.sleep(0.05)

    result = await cli("object", "--tenant-id", str(tenant), "--lead-id", str(objector), "--json")
    await dispatching

    assert result.code == 0, result
    report: dict[str, Any] = result.json()  # type: ignore[assignment]
    assert report["relayedFromOutbox"] == 2
    assert [job["outcome"] for job in report["jobs"]] == ["WITHDRAWN"]
    queued = [member.decode() for member in await redis.zrange("q:wa:phone_91", 0, -1)]
    assert [job.split(":")[2] for job in queued] == [str(other)]


async def test_audit_shows_the_bases_and_every_message(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000099")
    lead = await factory.lead(tenant, company={"denumire": "Moara Banatului SRL"})
    await run_dispatch(deps, tenant)
    checked(RouterResult, await route(job_ctx(deps, job_id="router-a"), follow_up(lead, phone)))

    as_json = await cli("audit", "--tenant-id", str(tenant), "--lead-id", str(lead), "--json")
    as_text = await cli("audit", "--tenant-id", str(tenant), "--lead-id", str(lead))

    assert (as_json.code, as_text.code) == (0, 0)
    audit: dict[str, Any] = as_json.json()  # type: ignore[assignment]
    assert audit["company"] == "Moara Banatului SRL"
    assert audit["bases"]["WHATSAPP"]["basis"] == "CONSENT"
    assert audit["objectedAt"] is None
    assert [(m["channel"], m["jobId"].split(":")[0], m["basis"]) for m in audit["messages"]] == [
        ("WHATSAPP", "wa", "CONSENT"),
        ("WHATSAPP", "routed", "CONSENT"),
    ]
    assert "2 message(s) recorded" in as_text.out
    assert "routed:router-a" in as_text.out
