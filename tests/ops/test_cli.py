"""The ops tool as an operator runs it: a real `python -m src.ops` process against PostgreSQL and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.domain.quota import quota_date
from src.names import ARQ_IN_PROGRESS_PREFIX, Queue, quota_key
from src.ops.seed import DEMO_TENANT_ID, LEADS, PHONES
from src.redis_io.codec import job_serializer
from src.runtime.deps import Deps
from tests.support.commands import cli
from tests.support.factories import Factory

TENANT = "8f0e1d5c-3c7a-4b8e-9a57-0a4f6c2b1e11"
LEAD = "1b6f8e90-52c4-4c7e-8f0e-5c1d2b3a4f11"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["enqueue", "dispatch"], "the following arguments are required: --tenant-id"),
        (["enqueue", "dispatch", "--tenant-id", "acme"], "not a tenant UUID nor 'ALL'"),
        (["enqueue", "dispatch", "--tenant-id", TENANT, "--batch-size", "0"], "0 is out of range (1..1000)"),
        (["enqueue", "dispatch", "--tenant-id", "ALL", "--batch-size", "ten"], "not a whole number"),
        (["enqueue", "dispatch", "--tenant-id", TENANT, "--priority-filter", "URGENT"], "invalid choice"),
        (["enqueue", "select", "--tenant-id", TENANT, "--lead-id", "42"], "not a UUID: '42'"),
        (
            [
                "enqueue",
                "route",
                "--message-type",
                "INITIAL",
                "--payload",
                "[1]",
                "--tenant-id",
                TENANT,
                "--lead-id",
                LEAD,
                "--phone-id",
                LEAD,
            ],
            "must be a JSON object, got list",
        ),
        (["enqueue", "allocate", "--tenant-id", TENANT], "required: --lead-id"),
        (["enqueue", "teleport"], "invalid choice: 'teleport'"),
        (["phones", "add", "--tenant-id", TENANT, "--number", "12"], "not a valid phone number: '12'"),
        (["phones", "add", "--tenant-id", TENANT, "--number", "0722123456", "--queue-slot", "a b"], "slot"),
        (["status", "--tenant-id", "x"], "not a UUID"),
        (
            [
                "phones",
                "add",
                "--tenant-id",
                TENANT,
                "--number",
                "0722123456",
                "--warmup-daily-increase",
                "-1",
            ],
            "argument --warmup-daily-increase: -1 is out of range (>= 0)",
        ),
        (["forecast", "--tenant-id", TENANT, "--days", "many"], "argument --days: not a whole number"),
    ],
)
async def test_bad_flags_are_refused_by_the_parser(args: list[str], complaint: str) -> None:
    result = await cli(*args, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="postgresql://x@127.0.0.1:1/x")
    assert result.code == 2, result
    assert complaint in result.err
    assert "usage: cerniq-ops" in result.err


BOTH = ("PostgreSQL", "Redis")
COMMANDS_AND_THEIR_SERVICES = [
    (["status"], BOTH),
    (["tenants"], ("PostgreSQL",)),
    (["seed-demo"], BOTH),
    (["phones", "list"], BOTH),
    (["phones", "add", "--tenant-id", TENANT, "--number", "0722123456"], ("PostgreSQL",)),
    (["job", "some-job"], ("Redis",)),
    (["enqueue", "select", "--tenant-id", TENANT, "--lead-id", LEAD], ("Redis",)),
    (["demo"], BOTH),
]
UNREACHABLE = {
    "PostgreSQL": {"DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/cerniq"},
    "Redis": {"REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"},
}


@pytest.mark.parametrize(
    ("args", "service"),
    [(args, service) for args, services in COMMANDS_AND_THEIR_SERVICES for service in services],
)
async def test_an_unreachable_service_is_one_line_and_exit_code_3(args: list[str], service: str) -> None:
    result = await cli(*args, **UNREACHABLE[service])
    assert result.code == 3, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert f"{service} is unreachable" in lines[0]
    assert "s3cret" not in lines[0]
    assert "Traceback" not in result.err


async def test_an_unmigrated_database_says_to_migrate(deps: Deps) -> None:
    result = await cli("tenants", DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres")
    assert result.code == 3
    assert "has no tables yet: run `.venv/bin/alembic upgrade head`" in result.err


async def test_phones_add_normalises_the_number_and_picks_a_free_slot(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(name="Agroferma Someșul SRL")
    added = await cli("phones", "add", "--tenant-id", str(tenant), "--number", "0722 123 456", "--json")
    assert added.code == 0, added
    phone = added.json()
    assert isinstance(phone, dict)
    assert (phone["phoneNumber"], phone["queueSlot"], phone["queue"]) == (
        "+40722123456",
        "56",
        "q:wa:phone_56",
    )

    same_suffix = await cli("phones", "add", "--tenant-id", str(tenant), "--number", "+40733000056")
    assert same_suffix.code == 0, same_suffix
    assert "q:wa:phone_0056 and q:wa:phone_0056:followup" in same_suffix.out

    chosen = await cli(
        "phones", "add", "--tenant-id", str(tenant), "--number", "0744000001", "--queue-slot", "cluj-1",
        "--daily-limit", "150", "--status", "PAUSED",
    )  # fmt: skip
    assert chosen.code == 0, chosen
    row = await factory.scalar(
        "SELECT row(queue_slot, daily_limit, status, is_enabled)::text FROM wa_phone_numbers "
        "WHERE phone_number = '+40744000001'"
    )
    assert row == "(cluj-1,150,PAUSED,t)"


async def test_phones_add_refuses_a_taken_number_or_slot_in_one_line(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant()
    other = await factory.tenant()
    await factory.phone(other, phone_number="+40722123456", queue_slot="56")

    duplicate = await cli("phones", "add", "--tenant-id", str(tenant), "--number", "0722123456")
    assert duplicate.code == 1
    assert duplicate.err.count("\n") == 1
    assert "+40722123456 is already registered" in duplicate.err

    slot = await cli(
        "phones", "add", "--tenant-id", str(tenant), "--number", "0733000001", "--queue-slot", "56"
    )
    assert slot.code == 1
    assert "queue slot '56' is taken by +40722123456" in slot.err

    unknown = await cli("phones", "add", "--tenant-id", TENANT, "--number", "0733000002")
    assert unknown.code == 1
    assert f"tenant {TENANT} not found" in unknown.err


async def test_seed_demo_refuses_to_seed_twice_and_resets_on_request(deps: Deps, factory: Factory) -> None:
    first = await cli("seed-demo")
    assert first.code == 0, first
    assert str(DEMO_TENANT_ID) in first.out
    again = await cli("seed-demo")
    assert again.code == 1
    assert "already seeded" in again.err
    await factory.scalar("UPDATE tenants SET name = 'changed' WHERE id = :t RETURNING 1", t=DEMO_TENANT_ID)
    reset = await cli("seed-demo", "--reset")
    assert reset.code == 0, reset
    tenants = await cli("tenants", "--json")
    [tenant] = tenants.json()  # type: ignore[misc]
    assert tenant["name"].startswith("Demo: ")
    assert (tenant["phones"], tenant["leads"]) == (len(PHONES), len(LEADS))


async def test_status_splits_every_queue_and_reads_quota_on_the_tenants_day(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    # The ops tool reads the host's clock (it ignores CLOCK_SHIFT_S, and so TEST_NOW), so the test does too.
    # The tenant lives where the date is not UTC's right now, at least half an hour from its midnight (UTC+14
    # after 10:30 UTC, UTC-11 before): the counter read must be the tenant's date.
    now = datetime.now(UTC)
    zone = "Pacific/Kiritimati" if (now.hour, now.minute) >= (10, 30) else "Pacific/Pago_Pago"
    tenant = await factory.tenant(name="Ferma Pacific SRL", timezone=zone)
    phone = await factory.phone(tenant, phone_number="+40722000077", daily_limit=50)
    paused = await factory.phone(tenant, phone_number="+40722000088", status="PAUSED")
    day = quota_date(now, zone)
    assert day != now.date()
    await redis.set(quota_key(phone, day), 12)
    await redis.set(quota_key(paused, day), 3)

    now_ms = int(now.timestamp() * 1000)
    job = job_serializer(
        {"t": 1, "f": "send-whatsapp-initial", "a": [{"tenantId": str(tenant)}], "k": {}, "et": 0}
    )
    for job_id, score in (("due-1", now_ms - 1000), ("due-2", now_ms - 500), ("later", now_ms + 3_600_000)):
        await redis.zadd("q:wa:phone_77", {job_id: score})
        await redis.set(f"arq:job:{job_id}", job)
    await redis.set(ARQ_IN_PROGRESS_PREFIX + "due-1", b"1")
    await redis.zadd(Queue.DISPATCH.value, {"dispatch:x": now_ms + 60_000})

    result = await cli("status", "--json")
    assert result.code == 0, result
    report: Any = result.json()
    depth = {q["queue"]: (q["deferred"], q["queued"], q["inProgress"]) for q in report["queues"]}
    assert depth["q:wa:phone_77"] == (1, 1, 1)
    assert depth["q:wa:phone_77:followup"] == (0, 0, 0)
    assert depth["q:wa:phone_88"] == (0, 0, 0)
    assert depth[Queue.DISPATCH.value] == (1, 0, 0)
    assert {"q:email:cold", "q:email:warm", *(q.value for q in Queue)} <= set(depth)
    phones = {p["phoneNumber"]: p for p in report["phones"]}
    assert phones["+40722000077"]["quotaDate"] == day.isoformat()
    assert (phones["+40722000077"]["used"], phones["+40722000077"]["remaining"]) == (12, 38)
    assert (phones["+40722000088"]["used"], phones["+40722000088"]["remaining"]) == (3, None)
    assert [w["up"] for w in report["workers"]] == [False] * 5

    text = await cli("status")
    assert text.code == 0
    assert "q:wa:phone_77" in text.out
    assert "Ferma Pacific SRL" in text.out
    assert "DOWN" in text.out


async def test_phones_list_and_tenants(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(name="Moara Banatului SRL", send_window_start=time(8))
    await factory.phone(tenant, phone_number="+40722000011")
    await factory.lead(tenant)
    listed = await cli("phones", "list", "--tenant-id", str(tenant))
    assert listed.code == 0
    assert "+40722000011" in listed.out
    assert "q:wa:phone_11" in listed.out
    tenants = await cli("tenants")
    assert tenants.code == 0
    assert str(tenant) in tenants.out
    assert "Moara Banatului SRL" in tenants.out
    assert UUID(str(tenant))
