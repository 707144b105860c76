"""The demo tenant: Romanian companies with leads in every situation, phones with different quota use.

Ids are fixed (uuid5), so a second seed finds the first: `seed-demo` refuses to seed twice unless asked to
`--reset`, which deletes the demo tenant's rows, its quota counters and the jobs it left on the queues.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.config import Config
from src.db import queries
from src.domain.quota import quota_date
from src.names import (
    ARQ_JOB_PREFIX,
    ARQ_RESULT_PREFIX,
    EMAIL_COLD_QUEUE,
    EMAIL_WARM_QUEUE,
    pace_key,
    pace_slots_key,
    portfolio_key,
    quota_key,
    quota_reservations_key,
    whatsapp_queue,
)
from src.ops.queues import as_text
from src.ops.services import OpsError, database, redis_client


def _id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://cerniq.app/demo/{name}")


DEMO_TENANT_ID = _id("tenant")
DEMO_TENANT_NAME = "Demo: Distribuție Agricolă Transilvania"
DEMO_TIMEZONE = "Europe/Bucharest"
SEQUENCE = "seq-agro-2026"
# Open every day, all day (a window whose start equals its end), holidays included: the demo dispatches
# whenever it runs.
DEMO_TENANT = queries.NewTenant(
    id=DEMO_TENANT_ID,
    name=DEMO_TENANT_NAME,
    timezone=DEMO_TIMEZONE,
    send_window_start=time(0),
    send_window_end=time(0),
    send_days=[1, 2, 3, 4, 5, 6, 7],
    skip_public_holidays=False,
)
WINDOW_NOTE = "sending window: every day, 00:00-00:00 (all day), public holidays not skipped"


@dataclass(frozen=True, slots=True)
class DemoPhone:
    key: str
    number: str
    daily_limit: int
    used_today: int
    status: str = "ACTIVE"
    warmup_day: int | None = None  # None: warmed up; k: the demo runs on day k of its warm-up

    @property
    def id(self) -> UUID:
        return _id(f"phone/{self.key}")

    def warmup_started_on(self, today: date) -> date | None:
        return today - timedelta(days=self.warmup_day - 1) if self.warmup_day else None


PHONES = (
    DemoPhone("cluj", "+40722100401", daily_limit=200, used_today=37),
    DemoPhone("brasov", "+40733200402", daily_limit=40, used_today=40),  # full for today
    DemoPhone("iasi", "+40744300403", daily_limit=250, used_today=85),
    DemoPhone("timis", "+40755400404", daily_limit=200, used_today=0, status="BANNED"),
    # A number added two days ago: day 3 of its warm-up, 20 + 2 * 10 = 40 of its 150 sends today (README).
    DemoPhone("bihor", "+40756500405", daily_limit=150, used_today=12, warmup_day=3),
)
_PHONE = {phone.key: phone for phone in PHONES}


@dataclass(frozen=True, slots=True)
class DemoLead:
    company: str
    judet: str
    localitate: str
    situation: str
    contact: str | None = "Ion Popescu"
    phone: str | None = None
    hlr_reachable: bool = True
    email: str | None = None
    email_status: str | None = "valid"
    stage: str = "COLD"
    priority: str = "NORMAL"
    sticky: str | None = None
    whatsapp_opted_out: bool = False
    email_opted_out: bool = False
    review: bool = False
    due_in: timedelta | None = None
    last_channel: str | None = None
    step: int = 0
    basis: str | None = "CONSENT"  # for both channels; None: none recorded
    objected: bool = False

    @property
    def id(self) -> UUID:
        return _id(f"lead/{self.company}")


LEADS = (
    DemoLead(
        "Agroferma Someșul SRL", "Cluj", "Dej", "new lead, WhatsApp verified",
        contact="Ioana Mureșan", phone="0745 112 233", email="office@agrofermasomesul.ro", priority="HIGH",
    ),
    DemoLead(
        "Lactate Bucovina SA", "Suceava", "Rădăuți", "in conversation on the Cluj phone (sticky)",
        contact="Mihai Rusu", phone="0746 223 344", email="achizitii@lactatebucovina.ro",
        stage="CONTACTED_WA", sticky="cluj", last_channel="WHATSAPP", step=1,
    ),
    DemoLead(
        "Vinăria Dealu Mare SRL", "Prahova", "Urlați", "sticky on the Brașov phone, whose quota is used up",
        contact="Elena Stan", phone="0747 334 455", email="contact@vinariadealumare.ro",
        stage="CONTACTED_WA", sticky="brasov", last_channel="WHATSAPP", step=1,
    ),
    DemoLead(
        "Transilvania Logistic SRL", "Brașov", "Codlea", "sticky on the Timiș phone, which is BANNED",
        contact="Andrei Kovács", phone="0748 445 566", email="dispecerat@transilvanialogistic.ro",
        stage="CONTACTED_WA", sticky="timis", last_channel="WHATSAPP", step=1,
    ),
    DemoLead(
        "Serele Mureșului SRL", "Mureș", "Reghin", "new lead, WhatsApp verified, low priority",
        contact="Gheorghe Szabó", phone="0749 556 677", email=None, email_status=None, priority="LOW",
    ),
    DemoLead(
        "Moara Banatului SRL", "Timiș", "Lugoj", "e-mail only (number not HLR-reachable)",
        contact="Daniela Popa", phone="0256 123 456", hlr_reachable=False, email="office@moarabanatului.ro",
    ),
    DemoLead(
        "Construcții Olt Invest SRL", "Olt", "Caracal", "e-mail only, already contacted by e-mail",
        contact="Marian Ionescu", phone=None, email="ofertare@oltinvest.ro", stage="CONTACTED_EMAIL",
        last_channel="EMAIL_COLD", step=1,
    ),
    DemoLead(
        "Panificația Dunărea SRL", "Galați", "Tecuci", "opted out of WhatsApp, e-mail allowed",
        contact="Cristina Dobre", phone="0752 667 788", email="comenzi@panificatiadunarea.ro",
        whatsapp_opted_out=True,
    ),
    DemoLead(
        "Mobila Maramureș SRL", "Maramureș", "Sighetu Marmației", "opted out of WhatsApp and e-mail",
        contact="Vasile Pop", phone="0753 778 899", email="vanzari@mobilamaramures.ro",
        whatsapp_opted_out=True, email_opted_out=True,
    ),
    DemoLead(
        "Depozitul de Cereale Argeș SRL", "Argeș", "Mioveni", "no verified contact (e-mail bounced)",
        contact=None, phone="0248 000 000", hlr_reachable=False, email="info@cerealearges.ro",
        email_status="invalid",
    ),
    DemoLead(
        "Ferma Avicolă Bărăgan SRL", "Ialomița", "Slobozia", "held for human review",
        contact="Adrian Marin", phone="0754 889 900", email="office@avicolabaragan.ro", review=True,
    ),
    DemoLead(
        "Tipografia Crișana SRL", "Bihor", "Salonta", "next action in two days (not due)",
        contact="Ana Toma", phone="0755 990 011", email="office@tipografiacrisana.ro",
        stage="CONTACTED_WA", sticky="iasi", last_channel="WHATSAPP", step=2, due_in=timedelta(days=2),
    ),
    DemoLead(
        "Ferma Dobrogea SRL", "Constanța", "Medgidia", "no lawful basis recorded (consent never given)",
        contact="Radu Ene", phone="0756 101 202", email="office@fermadobrogea.ro", basis=None,
    ),
    DemoLead(
        "Agro Vest Distribuție SRL", "Timiș", "Timișoara", "e-mail at a suppressed domain (agrovest.ro)",
        contact="Ion Bălan", phone=None, email="Achizitii@Timisoara.AgroVest.ro",
    ),
    DemoLead(
        "Cooperativa Agricolă Olt SRL", "Olt", "Slatina", "objected to direct marketing (GDPR art. 21)",
        contact="Maria Dinu", phone="0757 202 303", email="office@coopolt.ro", objected=True,
    ),
)  # fmt: skip
# The demo tenant's suppression list: a domain entry covers its subdomains, whatever the case.
SUPPRESSIONS = (("DOMAIN", "agrovest.ro", "ALL", "asked not to be contacted, call of 2026-10-14"),)
CONSENT_SOURCE = "form:https://cerniq.app/demo/abonare-newsletter"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "seed-demo",
        help="create the demo tenant (Romanian companies, phones, leads in every situation)",
        description="Create the demo tenant. It refuses to seed twice; --reset deletes the demo tenant "
        "(rows, quota counters, queued jobs) and seeds it again. Other tenants are not touched.",
    )
    parser.add_argument("--reset", action="store_true", help="delete the demo tenant first")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    async with database(config) as engine, redis_client(config) as client:
        await seed_demo(engine, client.redis, config, reset=args.reset)
    print(f"seeded tenant {DEMO_TENANT_NAME!r} ({DEMO_TENANT_ID})")
    print(f"  {len(PHONES)} phones, {len(LEADS)} leads; {WINDOW_NOTE}")
    print(f"  next: cerniq-ops enqueue dispatch --tenant-id {DEMO_TENANT_ID} --dry-run --wait")
    return 0


async def seed_demo(engine: AsyncEngine, redis: Redis, config: Config, *, reset: bool) -> None:
    now = datetime.now().astimezone()
    today = quota_date(now, DEMO_TIMEZONE)
    async with engine.connect() as conn:
        existing = await queries.find_tenant(conn, tenant_id=DEMO_TENANT_ID)
        if existing is not None and not reset:
            raise OpsError(
                f"the demo tenant is already seeded ({DEMO_TENANT_ID}); "
                "`cerniq-ops seed-demo --reset` deletes it and seeds it again"
            )
        # Also on a first seed: a Redis shared with an earlier demo database still holds that demo's
        # jobs and reservations under the same deterministic ids.
        await _forget_redis_state(redis, now)
        if existing is not None:
            await queries.delete_tenant(conn, tenant_id=DEMO_TENANT_ID)
        await queries.insert_tenant(conn, tenant=DEMO_TENANT)
        for phone in PHONES:
            await queries.insert_phone(
                conn,
                phone=queries.NewPhone(
                    id=phone.id,
                    tenant_id=DEMO_TENANT_ID,
                    phone_number=phone.number,
                    daily_limit=phone.daily_limit,
                    status=phone.status,
                    warmup_started_on=phone.warmup_started_on(today),
                ),
            )
        await queries.insert_leads(conn, tenant_id=DEMO_TENANT_ID, leads=[_row(lead, now) for lead in LEADS])
        await _insert_suppressions(conn)
        await conn.commit()
    async with redis.pipeline(transaction=True) as pipe:
        for phone in PHONES:
            if phone.used_today:
                pipe.set(quota_key(phone.id, today), phone.used_today, ex=config.quota_key_ttl_s)
        await pipe.execute()


async def _insert_suppressions(conn: AsyncConnection) -> None:
    for kind, value, channel, reason in SUPPRESSIONS:
        await queries.insert_suppression(
            conn,
            tenant_id=DEMO_TENANT_ID,
            kind=kind,
            value=value,
            channel=channel,
            reason=reason,
            created_by="cerniq-ops seed-demo",
        )


def _row(lead: DemoLead, now: datetime) -> queries.NewLead:
    given = now - timedelta(days=200) if lead.basis else None
    source = CONSENT_SOURCE if lead.basis else None
    return queries.NewLead(
        id=lead.id,
        denumire=lead.company,
        telefon_principal=lead.phone,
        hlr_reachable=lead.hlr_reachable,
        email_principal=lead.email,
        email_status=lead.email_status if lead.email else None,
        contact_principal_nume=lead.contact,
        judet=lead.judet,
        localitate=lead.localitate,
        engagement_stage=lead.stage,
        priority=lead.priority,
        next_action_at=now + lead.due_in if lead.due_in else None,
        requires_human_review=lead.review,
        assigned_phone_id=_PHONE[lead.sticky].id if lead.sticky else None,
        whatsapp_opted_out=lead.whatsapp_opted_out,
        email_opted_out=lead.email_opted_out,
        current_sequence_id=SEQUENCE,
        sequence_step=lead.step,
        last_channel_used=lead.last_channel,
        whatsapp_lawful_basis=lead.basis,
        whatsapp_basis_at=given,
        whatsapp_basis_source=source,
        email_lawful_basis=lead.basis,
        email_basis_at=given,
        email_basis_source=source,
        objected_at=now - timedelta(days=3) if lead.objected else None,
    )


async def _forget_redis_state(redis: Redis, now: datetime) -> None:
    """The demo tenant's quota counters, reservations and pacing schedules (yesterday to tomorrow), its
    portfolio budget, and its queued jobs.

    Job ids of this service name the tenant, so its jobs are found by pattern on every WhatsApp queue
    and both e-mail queues: a demo reset scans the keyspace once, fine for a demo and never done by the
    service itself.
    """
    today = quota_date(now, DEMO_TIMEZONE)
    days = [today + timedelta(days=offset) for offset in (-1, 0, 1)]
    keys = [quota_key(phone.id, day) for phone in PHONES for day in days]
    keys += [pace_key(phone.id, day) for phone in PHONES for day in days]
    keys += [quota_reservations_key(DEMO_TENANT_ID, day) for day in days]
    keys += [pace_slots_key(DEMO_TENANT_ID, day) for day in days]
    keys.append(portfolio_key(DEMO_TENANT_ID))
    pattern = f"*{DEMO_TENANT_ID}*"
    queues = [as_text(q) async for q in redis.scan_iter(match=whatsapp_queue("*"), _type="ZSET", count=1000)]
    for queue in [*queues, EMAIL_COLD_QUEUE, EMAIL_WARM_QUEUE]:
        async for member, _ in redis.zscan_iter(queue, match=pattern):
            await redis.zrem(queue, member)
    for prefix in (ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX):
        keys += [as_text(key) async for key in redis.scan_iter(match=prefix + pattern, count=1000)]
    await redis.delete(*keys)
