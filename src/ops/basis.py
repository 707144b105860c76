"""`basis set|import|allow`: a lead's lawful basis per channel and its evidence; a tenant's allowed bases.

A channel is allowed for a lead only when its basis is one its tenant allows (tenants.allowed_lawful_bases;
new tenants: CONSENT and EXISTING_CUSTOMER, the Romanian rule of Law 506/2004 art. 12). The evidence is
when the basis was given and where (a form URL, a contract number, a call reference): every message then
carries it (README, "Lawful basis").
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from src.config import Config
from src.db import queries
from src.db.queries.compliance import BasisUpdate, allow_bases, held_by_bases, set_bases
from src.domain.lawful import LawfulBasis, Medium
from src.ops import argtypes, csvfile
from src.ops.services import OpsError, pg_connection

BASES = [basis.value for basis in LawfulBasis]
MEDIA = [medium.value for medium in Medium]
Evidence = tuple[str, datetime, str]  # basis, at, source


def add_parser(commands: Any) -> None:
    basis = commands.add_parser("basis", help="lawful bases: a lead's per channel, a tenant's allowed ones")
    actions = basis.add_subparsers(dest="action", required=True, metavar="ACTION")

    put = actions.add_parser("set", help="record a lead's basis for one channel", description=__doc__)
    put.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    put.add_argument("--lead-id", required=True, type=argtypes.uuid)
    put.add_argument("--channel", required=True, choices=MEDIA)
    put.add_argument("--basis", required=True, choices=BASES)
    put.add_argument("--source", required=True, help='where it was given, e.g. "form:https://..."')
    put.add_argument("--at", type=argtypes.instant, help="when it was given, ISO 8601 (default: now)")
    put.set_defaults(handler=run_set)

    load = csvfile.import_parser(
        actions,
        "bases",
        "lead_id, channel (EMAIL or WHATSAPP), basis and source, and optionally at (ISO 8601 with its "
        "offset; default now); a lead the tenant does not have is a bad line",
    )
    load.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    load.set_defaults(handler=run_import)

    allow = actions.add_parser(
        "allow",
        help="set the bases a tenant's channels may rest on",
        description="Set tenants.allowed_lawful_bases. --dry-run says how many of the tenant's leads no "
        "channel would reach under the new list, and changes nothing. An empty list (--gate-off) turns "
        "the basis gate off; objections and suppressions still hold.",
    )
    allow.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    chosen = allow.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--bases", nargs="+", choices=BASES, help="e.g. CONSENT EXISTING_CUSTOMER")
    chosen.add_argument("--gate-off", action="store_true", help="allow every lead, with a basis or not")
    allow.add_argument("--dry-run", action="store_true", help="only say what the list would hold back")
    allow.set_defaults(handler=run_allow)


def _update(lead_id: UUID, medium: str, evidence: Evidence) -> BasisUpdate:
    whatsapp = medium == Medium.WHATSAPP
    return BasisUpdate(lead_id, evidence if whatsapp else None, None if whatsapp else evidence)


async def _write(conn: asyncpg.Connection, tenant_id: UUID, updates: list[BasisUpdate]) -> set[UUID]:
    if await queries.load_tenant(conn, tenant_id=tenant_id) is None:
        raise OpsError(f"tenant {tenant_id} not found")
    return await set_bases(conn, tenant_id=tenant_id, updates=updates)


async def run_set(args: argparse.Namespace, config: Config) -> int:
    at = args.at or datetime.now(UTC)
    if at > datetime.now(UTC):
        raise OpsError(f"--at {at.isoformat()} is in the future")
    update = _update(args.lead_id, args.channel, (args.basis, at, args.source))
    async with pg_connection(config) as conn:
        found = await _write(conn, args.tenant_id, [update])
    if not found:
        raise OpsError(f"lead {args.lead_id} not found for tenant {args.tenant_id}")
    print(f"lead {args.lead_id}: {args.channel} on {args.basis} since {at.isoformat()} ({args.source})")
    return 0


def _parse_file(path: Path, now: datetime) -> tuple[list[BasisUpdate], dict[UUID, int]]:
    """One update per lead (its rows merged), and the line of each lead; OpsError naming every bad line."""
    per_lead: dict[UUID, dict[str, Evidence]] = {}
    first_line: dict[UUID, int] = {}
    seen: dict[tuple[UUID, str], int] = {}
    problems: list[str] = []
    for line in csvfile.read_lines(
        path, required=("lead_id", "channel", "basis", "source"), optional=("at",)
    ):
        try:
            lead_id, medium, evidence = _parse_line(line.values, now)
        except ValueError as exc:
            problems.append(f"line {line.number}: {exc}")
            continue
        if (lead_id, medium) in seen:
            problems.append(
                f"line {line.number}: lead {lead_id} {medium} is also on line {seen[lead_id, medium]}"
            )
            continue
        seen[lead_id, medium] = line.number
        first_line.setdefault(lead_id, line.number)
        per_lead.setdefault(lead_id, {})[medium] = evidence
    csvfile.refuse(path, problems)
    updates = [
        BasisUpdate(lead, media.get(Medium.WHATSAPP), media.get(Medium.EMAIL))
        for lead, media in per_lead.items()
    ]
    return updates, first_line


def _parse_line(cells: dict[str, str], now: datetime) -> tuple[UUID, str, Evidence]:
    try:
        lead_id = UUID(cells["lead_id"])
    except ValueError:
        raise ValueError(f"lead_id {cells['lead_id']!r} is not a UUID") from None
    medium, basis = cells["channel"].upper(), cells["basis"].upper()
    if medium not in MEDIA:
        raise ValueError(f"channel {cells['channel']!r} is not EMAIL or WHATSAPP")
    if basis not in BASES:
        raise ValueError(f"basis {cells['basis']!r} is not one of {', '.join(BASES)}")
    if not cells["source"]:
        raise ValueError("source is empty: say where the basis was given")
    try:
        at = argtypes.instant(cells["at"]) if cells["at"] else now
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"at: {exc}") from None
    if at > now:
        raise ValueError(f"at {cells['at']} is in the future")
    return lead_id, medium, (basis, at, cells["source"])


async def run_import(args: argparse.Namespace, config: Config) -> int:
    updates, lines = _parse_file(args.file, datetime.now(UTC))
    async with pg_connection(config) as conn, conn.transaction():
        found = await _write(conn, args.tenant_id, updates)
        unknown = sorted((lines[u.lead_id], u.lead_id) for u in updates if u.lead_id not in found)
        # Raising rolls the transaction back: nothing written.
        csvfile.refuse(
            args.file, [f"line {n}: lead {lead} not found for tenant {args.tenant_id}" for n, lead in unknown]
        )
    print(f"{args.file}: bases recorded for {len(updates)} leads of tenant {args.tenant_id}")
    return 0


async def run_allow(args: argparse.Namespace, config: Config) -> int:
    bases = [] if args.gate_off else sorted(set(args.bases))
    shown = ", ".join(bases) or "none: the basis gate is off"
    async with pg_connection(config) as conn:
        if await queries.load_tenant(conn, tenant_id=args.tenant_id) is None:
            raise OpsError(f"tenant {args.tenant_id} not found")
        due, held = await held_by_bases(conn, tenant_id=args.tenant_id, bases=bases)
        if not args.dry_run:
            await allow_bases(conn, tenant_id=args.tenant_id, bases=bases)
    verb = "would allow" if args.dry_run else "allows"
    print(f"tenant {args.tenant_id} {verb} {shown}")
    print(
        f"  {held} of its {due} leads in a due stage have no allowed basis on any channel: "
        "no message goes to them"
    )
    return 0
