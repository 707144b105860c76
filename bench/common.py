"""What the benchmarks share: where they run, the service's Config and Deps, and generated data.

The benchmarks empty the tables and the Redis database they run against, so they refuse any PostgreSQL
database whose name does not start with `cerniq_bench` and any Redis database below 11. Point them
elsewhere with BENCH_DATABASE_URL and BENCH_REDIS_URL (deliberately not DATABASE_URL / REDIS_URL, which
may name a real deployment in the shell or in `.env`).

The fixed instant, the always-open window, the table list and the environment of the processes they
start are the tests' own (tests/support).

Data is generated from a seeded RNG, so the same seed gives the same rows, ids included, and written
with COPY (asyncpg's copy_records_to_table).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from src.config import Config
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps, build_deps
from tests.support.clock import OPEN_HOURS
from tests.support.services import TABLES, alembic, process_env
from tests.support.tenants import ALWAYS_OPEN

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cerniq_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
BENCH_DATABASE_PREFIX = "cerniq_bench"
FIRST_BENCH_REDIS_DB = 11


# ------------------------------------------------------------------ where the benchmarks run


@dataclass(frozen=True)
class Target:
    database_url: str  # postgresql://...
    redis_url: str

    @classmethod
    def from_env(cls, *, database: str | None = None) -> Target:
        url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        if database is not None:
            url = urlunsplit(urlsplit(url)._replace(path="/" + database))
        target = cls(url, os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
        target.check()
        return target

    @property
    def database(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/")

    @property
    def redis_db(self) -> int:
        return int(urlsplit(self.redis_url).path.lstrip("/") or 0)

    def check(self) -> None:
        if not self.database.startswith(BENCH_DATABASE_PREFIX):
            sys.exit(
                f"refusing to run: database {self.database!r} does not start with {BENCH_DATABASE_PREFIX!r}"
            )
        if self.redis_db < FIRST_BENCH_REDIS_DB:
            sys.exit(f"refusing to run: Redis db {self.redis_db} is below {FIRST_BENCH_REDIS_DB}")

    def settings(self, **overrides: Any) -> Config:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "log_level": "WARNING",
            "outbox_relay_grace_s": 60,
        }
        values.update(overrides)
        return Config(_env_file=None, **values)  # type: ignore[call-arg]

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a subprocess (alembic, a worker) pointed at this target."""
        return process_env(self.database_url, self.redis_url, **extra)


async def prepare(target: Target) -> None:
    """Create the database when missing and migrate it to head with the real migrations."""
    admin = await asyncpg.connect(target.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
    migrate = await asyncio.to_thread(alembic, "upgrade", "head", env=target.env())
    if migrate.returncode:
        sys.exit(f"alembic upgrade head failed:\n{migrate.stderr}")


async def connect(target: Target) -> asyncpg.Connection:
    return await asyncpg.connect(target.database_url)


async def reset(apg: asyncpg.Connection, redis: Redis) -> None:
    """Empty the benchmark's tables and its Redis database (never any other)."""
    await apg.execute(f"TRUNCATE {TABLES} CASCADE")
    await redis.flushdb()


async def bench_deps(target: Target, *, clock: datetime = OPEN_HOURS, **overrides: Any) -> Deps:
    return await build_deps(target.settings(**overrides), clock=FixedClock(clock))


# ------------------------------------------------------------------ generated data

TENANT_COLUMNS = (
    "id",
    "name",
    "status",
    "timezone",
    "send_window_start",
    "send_window_end",
    "send_days",
    "skip_public_holidays",
    "holiday_country",
)
PHONE_COLUMNS = (
    "id",
    "tenant_id",
    "phone_number",
    "status",
    "is_enabled",
    "daily_limit",
    "total_messages_sent",
)
COMPANY_COLUMNS = (
    "id",
    "tenant_id",
    "denumire",
    "telefon_principal",
    "hlr_reachable",
    "email_principal",
    "email_status",
    "contact_principal_nume",
    "judet",
    "localitate",
)
JOURNEY_COLUMNS = (
    "id",
    "tenant_id",
    "lead_id",
    "engagement_stage",
    "priority",
    "next_action_at",
    "requires_human_review",
    "assigned_phone_id",
    "assigned_at",
    "whatsapp_opted_out",
    "email_opted_out",
    "current_sequence_id",
    "sequence_step",
    "last_channel_used",
    "last_dispatched_at",
    "whatsapp_lawful_basis",
    "whatsapp_basis_at",
    "whatsapp_basis_source",
    "email_lawful_basis",
    "email_basis_at",
    "email_basis_source",
)
SUPPRESSION_COLUMNS = ("tenant_id", "channel", "kind", "value", "reason", "created_by")
_COPY_CHUNK = 50_000

_JUDETE = {
    "Cluj": ("Cluj-Napoca", "Turda", "Dej", "Gherla"),
    "Timiș": ("Timișoara", "Lugoj", "Sânnicolau Mare"),
    "Iași": ("Iași", "Pașcani", "Târgu Frumos"),
    "Dolj": ("Craiova", "Băilești", "Calafat"),
    "Bihor": ("Oradea", "Salonta", "Marghita"),
    "Constanța": ("Constanța", "Medgidia", "Mangalia"),
    "Ilfov": ("Voluntari", "Otopeni", "Buftea"),
    "Brașov": ("Brașov", "Făgăraș", "Codlea"),
}
_COMPANY_WORDS = ("Agro", "Ferma", "Cereale", "Legume", "Zootehnia", "Vie", "Lactate", "Pomicola", "Apicola")
_FIRST = ("Ion", "Maria", "Andrei", "Elena", "Gheorghe", "Ana", "Mihai", "Ioana", "Vasile", "Cristina")
_LAST = ("Popescu", "Ionescu", "Popa", "Stan", "Dumitru", "Stoica", "Gheorghiu", "Matei", "Munteanu")
_MOBILE_PREFIXES = ("72", "73", "74", "75", "76", "77")
_SEQUENCES = (None, "seq-onboarding", "seq-agro-2026", "seq-reactivation")
_OTHER_STAGES = ("WARM_REPLY", "NEGOTIATION", "CONVERTED", "DEAD", "PAUSED")


def new_uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


@dataclass(frozen=True)
class Phone:
    id: UUID
    number: str
    available: bool


@dataclass
class TenantData:
    id: UUID
    phones: list[Phone]
    lead_ids: list[UUID] = field(default_factory=list)


def _local_phone(rng: random.Random) -> str | None:
    """A company's main number as upstream stages store it: several formats, a few unusable."""
    roll = rng.random()
    if roll < 0.04:
        return None
    digits = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10_000_000):07d}"
    if roll < 0.07:
        return "0" + digits[:5]  # truncated: not a valid number
    if roll < 0.40:
        return "0" + digits
    if roll < 0.62:
        return "+40" + digits
    if roll < 0.67:
        return "0040" + digits
    if roll < 0.90:
        return f"0{digits[:3]} {digits[3:6]} {digits[6:]}"
    return f"+40 {digits[:3]} {digits[3:6]} {digits[6:]}"


def _company(rng: random.Random, tenant_id: UUID, n: int) -> tuple[Any, ...]:
    judet = rng.choice(tuple(_JUDETE))
    phone = _local_phone(rng)
    has_email = rng.random() < 0.82
    return (
        new_uuid(rng),
        tenant_id,
        f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_WORDS)} {n} SRL",
        phone,
        phone is not None and rng.random() < 0.9,
        f"office{n}@{judet.lower()[:4]}-agro.ro" if has_email else None,
        rng.choices(("valid", "unknown", "risky", "invalid"), (75, 10, 8, 7))[0] if has_email else None,
        f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" if rng.random() < 0.85 else None,
        judet,
        rng.choice(_JUDETE[judet]),
    )


def _journey(
    rng: random.Random,
    tenant_id: UUID,
    lead_id: UUID,
    phones: Sequence[Phone],
    now: datetime,
    *,
    due_share: float,
) -> tuple[Any, ...]:
    """One journey. `due_share` of them are due (due stage, not held, next action null or past); the
    rest are what a live table holds besides: scheduled later, in other stages, held for review."""
    roll = rng.random()
    held = False
    if roll < due_share:
        stage = rng.choices(("COLD", "CONTACTED_WA", "CONTACTED_EMAIL"), (60, 25, 15))[0]
        next_action = None if rng.random() < 0.4 else now - timedelta(seconds=rng.randrange(60, 30 * 86_400))
        held = rng.random() < 0.03  # due by date, but waiting for a person
    else:
        rest = (roll - due_share) / (1 - due_share)
        if rest < 0.75:  # scheduled later: the bulk of a live table
            stage = rng.choices(("COLD", "CONTACTED_WA", "CONTACTED_EMAIL"), (30, 45, 25))[0]
            next_action = now + timedelta(seconds=rng.randrange(3_600, 60 * 86_400))
        elif rest < 0.95:
            stage = rng.choice(_OTHER_STAGES)
            next_action = rng.choice((None, now - timedelta(days=rng.randrange(1, 90))))
        else:
            stage = rng.choice(("COLD", "CONTACTED_WA", "CONTACTED_EMAIL"))
            next_action = rng.choice((None, now - timedelta(hours=rng.randrange(1, 500))))
            held = True
    sticky = stage != "COLD" and stage != "CONTACTED_EMAIL" and bool(phones)
    sequence = rng.choice(_SEQUENCES)
    contacted = stage != "COLD"
    last_channel = None
    if stage == "CONTACTED_WA" or (contacted and rng.random() < 0.5):
        last_channel = "WHATSAPP" if sticky else rng.choice(("WHATSAPP", "EMAIL_COLD"))
    elif contacted:
        last_channel = rng.choice(("EMAIL_COLD", "EMAIL_WARM"))
    return (
        new_uuid(rng),
        tenant_id,
        lead_id,
        stage,
        rng.choices(("HIGH", "NORMAL", "LOW"), (10, 75, 15))[0],
        next_action,
        held,
        rng.choice(phones).id if sticky else None,
        now - timedelta(days=rng.randrange(1, 60)) if sticky else None,
        rng.random() < 0.05,
        rng.random() < 0.03,
        sequence,
        rng.randrange(1, 6) if contacted and sequence else 0,
        last_channel,
        now - timedelta(days=rng.randrange(1, 60)) if contacted else None,
        *_bases(lead_id, now),
    )


def _bases(lead_id: UUID, now: datetime) -> tuple[Any, ...]:
    """Every lead has a basis for both channels that the Romanian default allows (issue 11), derived from
    its id: the generator's random stream, and so the rest of the data, stay what they were before."""
    basis = "EXISTING_CUSTOMER" if lead_id.int % 3 == 0 else "CONSENT"
    source = (
        f"contract:RO-{lead_id.int % 100_000}"
        if basis == "EXISTING_CUSTOMER"
        else "form:https://agro.example/abonare"
    )
    at = now - timedelta(days=1 + lead_id.int % 700)
    return basis, at, source, basis, at, source


async def add_suppressions(apg: asyncpg.Connection, seed: int, tenant_id: UUID, count: int) -> None:
    """`count` suppression entries, half the tenant's and half global, of every kind and channel, none of
    which names a generated lead (so the service and the spec's algorithm still enqueue the same jobs):
    what dispatch pays is the lookup of each batch's keys among them. Their own random stream."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        kind = ("EMAIL", "DOMAIN", "PHONE")[n % 3]
        if kind == "EMAIL":
            value = f"{rng.choice(_FIRST).lower()}.{n}@{rng.choice(_COMPANY_WORDS).lower()}-{n % 400}.ro"
        elif kind == "DOMAIN":
            value = f"{rng.choice(_COMPANY_WORDS).lower()}{n}.{rng.choice(('ro', 'com', 'eu'))}"
        else:
            value = f"+40268{n:06d}"
        channel = ("ALL", "EMAIL", "WHATSAPP")[rng.randrange(3)]
        rows.append((tenant_id if n % 2 else None, channel, kind, value, "bench", "bench"))
    await apg.copy_records_to_table("suppressions", records=rows, columns=SUPPRESSION_COLUMNS)


async def add_tenant(
    apg: asyncpg.Connection,
    rng: random.Random,
    *,
    index: int,
    phones: int,
    daily_limit: int,
    always_open: bool = True,
) -> TenantData:
    """A tenant and its phones. About one phone in twelve is unavailable (paused, banned or disabled)."""
    tenant_id = new_uuid(rng)
    window = ALWAYS_OPEN if always_open else {}
    await apg.copy_records_to_table(
        "tenants",
        records=[
            (
                tenant_id,
                f"Bench tenant {index}",
                "ACTIVE",
                "Europe/Bucharest",
                window.get("send_window_start", time(9)),
                window.get("send_window_end", time(18)),
                window.get("send_days", [1, 2, 3, 4, 5]),
                window.get("skip_public_holidays", True),
                "RO",
            )
        ],
        columns=TENANT_COLUMNS,
    )
    rows = []
    for n in range(phones):
        status = "PAUSED" if n % 25 == 7 else "BANNED" if n % 50 == 13 else "ACTIVE"
        enabled = n % 50 != 31
        number = f"+4079{index:03d}{n:04d}"
        rows.append(
            (new_uuid(rng), tenant_id, number, status, enabled, daily_limit, rng.randrange(0, 50_000))
        )
    await apg.copy_records_to_table("wa_phone_numbers", records=rows, columns=PHONE_COLUMNS)
    return TenantData(tenant_id, [Phone(r[0], r[2], r[3] == "ACTIVE" and r[4]) for r in rows])


async def add_leads(
    apg: asyncpg.Connection,
    rng: random.Random,
    tenant: TenantData,
    count: int,
    *,
    now: datetime = OPEN_HOURS,
    due_share: float = 1.0,
    keep_ids: bool = True,
) -> None:
    """`count` companies with one journey each, written with COPY in chunks."""
    start = len(tenant.lead_ids) if keep_ids else rng.randrange(10**9)
    for chunk_start in range(0, count, _COPY_CHUNK):
        companies, journeys = [], []
        for n in range(chunk_start, min(count, chunk_start + _COPY_CHUNK)):
            company = _company(rng, tenant.id, start + n)
            companies.append(company)
            journeys.append(_journey(rng, tenant.id, company[0], tenant.phones, now, due_share=due_share))
        await apg.copy_records_to_table("gold_companies", records=companies, columns=COMPANY_COLUMNS)
        await apg.copy_records_to_table("gold_lead_journey", records=journeys, columns=JOURNEY_COLUMNS)
        if keep_ids:
            tenant.lead_ids.extend(c[0] for c in companies)


async def add_many_tenants(
    apg: asyncpg.Connection, rng: random.Random, *, tenants: int, phones: int, leads: int, daily_limit: int
) -> None:
    """`tenants` always-open ACTIVE tenants, each with `phones` available phones and `leads` due leads,
    written with a few large COPYs (one per table and chunk) rather than several per tenant."""
    window = ALWAYS_OPEN
    for start in range(0, tenants, _COPY_CHUNK // max(1, leads)):
        stop = min(tenants, start + _COPY_CHUNK // max(1, leads))
        rows: dict[str, list[tuple[Any, ...]]] = {"t": [], "p": [], "c": [], "j": []}
        for index in range(start, stop):
            tenant_id = new_uuid(rng)
            rows["t"].append(
                (
                    tenant_id,
                    f"Bench tenant {index}",
                    "ACTIVE",
                    "Europe/Bucharest",
                    window["send_window_start"],
                    window["send_window_end"],
                    window["send_days"],
                    window["skip_public_holidays"],
                    "RO",
                )
            )
            own = [Phone(new_uuid(rng), f"+4078{index:05d}{n:02d}", True) for n in range(phones)]
            rows["p"] += [(p.id, tenant_id, p.number, "ACTIVE", True, daily_limit, 0) for p in own]
            for n in range(leads):
                company = _company(rng, tenant_id, index * leads + n)
                rows["c"].append(company)
                rows["j"].append(_journey(rng, tenant_id, company[0], own, OPEN_HOURS, due_share=1.0))
        for table, key, columns in (
            ("tenants", "t", TENANT_COLUMNS),
            ("wa_phone_numbers", "p", PHONE_COLUMNS),
            ("gold_companies", "c", COMPANY_COLUMNS),
            ("gold_lead_journey", "j", JOURNEY_COLUMNS),
        ):
            await apg.copy_records_to_table(table, records=rows[key], columns=columns)


# ------------------------------------------------------------------ reporting


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
