"""`phones add` and `phones list`: the tenant's WhatsApp numbers and their queues."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc

from src.config import Config
from src.db import queries
from src.domain.quota import quota_date
from src.names import whatsapp_queue
from src.ops import argtypes
from src.ops.render import print_json
from src.ops.services import OpsError, UsageError, database, redis_client
from src.ops.status import StatusReport, as_json, phone_quotas, phone_table


def add_parser(commands: Any) -> None:
    phones = commands.add_parser("phones", help="register and list WhatsApp numbers")
    actions = phones.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="register a WhatsApp number",
        description="Register a WhatsApp number for a tenant. The number is stored in E.164; its queue "
        "is q:wa:phone_<slot>, the slot being the last two digits while they are free.",
    )
    add.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    add.add_argument(
        "--number", required=True, type=argtypes.e164, help="+40722123456, or 0722 123 456 (read as RO)"
    )
    add.add_argument("--queue-slot", type=argtypes.queue_slot, help="default: chosen by the database")
    add.add_argument("--daily-limit", type=argtypes.int_between(0), help="WhatsApp sends a day (default 200)")
    add.add_argument("--status", choices=["ACTIVE", "PAUSED", "BANNED"], help="default ACTIVE")
    add.add_argument("--disabled", action="store_true", help="register it with is_enabled false")
    add.add_argument(
        "--warmed-up",
        action="store_true",
        help="the number has sent for a while already: no warm-up (by default the warm-up starts today, "
        "in the tenant's timezone)",
    )
    add.add_argument(
        "--warmup-initial-limit", type=argtypes.int_between(0), help="sends on the first day (default 20)"
    )
    add.add_argument(
        "--warmup-daily-increase", type=argtypes.int_between(0), help="sends more each day (default 10)"
    )
    add.add_argument("--json", action="store_true", help="machine-readable output")
    add.set_defaults(handler=run_add)

    listing = actions.add_parser("list", help="every phone with today's quota")
    listing.add_argument("--tenant-id", type=argtypes.uuid)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_list)


def _new_phone(args: argparse.Namespace, tenant: queries.TenantRow, now: datetime) -> queries.NewPhone:
    """The row to insert. A new number starts its warm-up on the tenant-local day it is added."""
    if args.warmed_up and (args.warmup_initial_limit is not None or args.warmup_daily_increase is not None):
        raise UsageError(
            "--warmed-up has no warm-up: leave out --warmup-initial-limit and --warmup-daily-increase"
        )
    try:
        started = None if args.warmed_up else quota_date(now, tenant.timezone)
    except ValueError as exc:
        raise OpsError(f"tenant {tenant.id} has no local day to start the warm-up on: {exc}") from None
    return queries.NewPhone(
        tenant_id=args.tenant_id,
        phone_number=args.number,
        queue_slot=args.queue_slot,
        daily_limit=args.daily_limit,
        status=args.status,
        is_enabled=False if args.disabled else None,
        warmup_started_on=started,
        warmup_initial_limit=args.warmup_initial_limit,
        warmup_daily_increase=args.warmup_daily_increase,
    )


async def run_add(args: argparse.Namespace, config: Config) -> int:
    async with database(config) as engine, engine.connect() as conn:
        tenant = await queries.find_tenant(conn, tenant_id=args.tenant_id)
        if tenant is None:
            raise OpsError(f"tenant {args.tenant_id} not found")
        phone = _new_phone(args, tenant, datetime.now(UTC))
        await _refuse_taken(conn, args.number, args.queue_slot)
        try:
            phone_id, slot = await queries.insert_phone(conn, phone=phone)
            await conn.commit()
        except sa_exc.IntegrityError as exc:  # a concurrent registration took the number or the slot
            await conn.rollback()
            await _refuse_taken(conn, args.number, args.queue_slot)
            raise OpsError(f"cannot register {args.number}: {exc.orig}") from None
    if args.json:
        print_json(
            {
                "phoneId": str(phone_id),
                "tenantId": str(args.tenant_id),
                "phoneNumber": args.number,
                "queueSlot": slot,
                "queue": whatsapp_queue(slot),
                "followupQueue": whatsapp_queue(slot, followup=True),
                "warmupStartedOn": phone.warmup_started_on.isoformat() if phone.warmup_started_on else None,
            }
        )
    else:
        warmup = f"warm-up from {phone.warmup_started_on}" if phone.warmup_started_on else "warmed up"
        print(
            f"registered {args.number} for {tenant.name}: phone {phone_id}, "
            f"queues {whatsapp_queue(slot)} and {whatsapp_queue(slot, followup=True)}, {warmup}"
        )
    return 0


async def _refuse_taken(conn: Any, number: str, slot: str | None) -> None:
    for phone_id, tenant_id, taken_number, taken_slot in await queries.phones_taking(
        conn, phone_number=number, queue_slot=slot
    ):
        if taken_number == number:
            raise OpsError(f"{number} is already registered (phone {phone_id}, tenant {tenant_id})")
        raise OpsError(
            f"queue slot {taken_slot!r} is taken by {taken_number} (phone {phone_id}, tenant {tenant_id}): "
            "choose another --queue-slot, or leave it out"
        )


async def run_list(args: argparse.Namespace, config: Config) -> int:
    now = datetime.now(UTC)
    async with database(config) as engine, redis_client(config) as client:
        quotas = await phone_quotas(engine, client.redis, now=now, tenant_id=args.tenant_id)
    if args.json:
        print_json(as_json(StatusReport(now, [], quotas, []))["phones"])
    else:
        print(phone_table(quotas))
    return 0
