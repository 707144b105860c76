"""`suppress add|remove|list|import`: addresses, domains and numbers that a channel must not reach.

An entry names leads by its kind (an address; a domain, which covers its subdomains; a number) and blocks
the channel it names, ALL by default; it is one tenant's (--tenant-id) or every tenant's (--global).
Dispatch, select_channel, route and allocate_phone read the entries as they decide
(src/domain/suppression.py).
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any
from uuid import UUID

import asyncpg

from src.config import Config
from src.db import queries
from src.db.queries.compliance import (
    NewSuppression,
    delete_suppressions,
    insert_suppressions,
    list_suppressions,
)
from src.domain.suppression import SuppressionChannel, SuppressionKind, normalized
from src.ops import argtypes, csvfile
from src.ops.render import print_json, short_id, table
from src.ops.services import OpsError, pg_connection

CHANNELS = [channel.value for channel in SuppressionChannel]


def add_parser(commands: Any) -> None:
    suppress = commands.add_parser("suppress", help="suppression lists: who a channel must not reach")
    actions = suppress.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add one entry", description=__doc__)
    _value(add)
    _scope(add)
    add.add_argument("--channel", choices=CHANNELS, default="ALL", help="the channel it blocks (default ALL)")
    add.add_argument("--reason", help="why, for whoever reads the list later")
    add.add_argument("--by", help="who adds it (default: cerniq-ops:<your user name>)")
    add.set_defaults(handler=run_add)

    remove = actions.add_parser("remove", help="remove an entry")
    _value(remove)
    _scope(remove)
    remove.add_argument(
        "--channel", choices=CHANNELS, help="only this channel's entry (default: all of them)"
    )
    remove.set_defaults(handler=run_remove)

    listing = actions.add_parser("list", help="a tenant's entries, or the global ones")
    _scope(listing)
    listing.add_argument("--with-global", action="store_true", help="with --tenant-id: the global ones too")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_list)

    load = csvfile.import_parser(
        actions,
        "entries",
        "kind (EMAIL, DOMAIN or PHONE) and value, and optionally channel and reason (else --channel and "
        "--reason)",
    )
    _scope(load)
    load.add_argument("--channel", choices=CHANNELS, default="ALL", help="for rows without one (default ALL)")
    load.add_argument("--reason", help="for rows without one")
    load.add_argument("--by", help="who adds them (default: cerniq-ops:<your user name>)")
    load.set_defaults(handler=run_import)


def _value(parser: argparse.ArgumentParser) -> None:
    value = parser.add_mutually_exclusive_group(required=True)
    value.add_argument("--email", type=argtypes.suppressed(SuppressionKind.EMAIL), help="an address")
    value.add_argument(
        "--domain", type=argtypes.suppressed(SuppressionKind.DOMAIN), help="a domain, and every one under it"
    )
    value.add_argument(
        "--phone", type=argtypes.suppressed(SuppressionKind.PHONE), help="a number (RO if national)"
    )


def _scope(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant-id", type=argtypes.uuid, help="one tenant's entry")
    scope.add_argument("--global", dest="everyone", action="store_true", help="every tenant's entry")


def _kind_and_value(args: argparse.Namespace) -> tuple[SuppressionKind, str]:
    for kind in SuppressionKind:
        value = getattr(args, kind.lower())
        if value is not None:
            return kind, value
    raise AssertionError("argparse requires one of --email, --domain, --phone")


def _scope_name(tenant_id: UUID | None) -> str:
    return f"tenant {tenant_id}" if tenant_id else "every tenant"


def _author(given: str | None) -> str:
    if given:
        return given
    try:
        return f"cerniq-ops:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cerniq-ops"


async def _check_tenant(conn: asyncpg.Connection, tenant_id: UUID | None) -> None:
    if tenant_id is not None and await queries.load_tenant(conn, tenant_id=tenant_id) is None:
        raise OpsError(f"tenant {tenant_id} not found")


async def run_add(args: argparse.Namespace, config: Config) -> int:
    kind, value = _kind_and_value(args)
    entry = NewSuppression(kind.value, value, args.channel, args.reason)
    async with pg_connection(config) as conn:
        await _check_tenant(conn, args.tenant_id)
        added = await insert_suppressions(
            conn, tenant_id=args.tenant_id, entries=[entry], created_by=_author(args.by)
        )
    state = "added" if added else "already there"
    print(f"{kind} {value} suppressed on {args.channel} for {_scope_name(args.tenant_id)}: {state}")
    return 0


async def run_remove(args: argparse.Namespace, config: Config) -> int:
    kind, value = _kind_and_value(args)
    async with pg_connection(config) as conn:
        removed = await delete_suppressions(
            conn, tenant_id=args.tenant_id, kind=kind.value, value=value, channel=args.channel
        )
    if not removed:
        raise OpsError(f"no {kind} entry {value} for {_scope_name(args.tenant_id)}")
    print(f"removed {kind} {value} ({', '.join(sorted(removed))}) for {_scope_name(args.tenant_id)}")
    return 0


async def run_list(args: argparse.Namespace, config: Config) -> int:
    async with pg_connection(config) as conn:
        rows = await list_suppressions(conn, tenant_id=args.tenant_id, with_global=args.with_global)
    if args.json:
        print_json(
            [
                {
                    "tenantId": str(row.tenant_id) if row.tenant_id else None,
                    "channel": row.channel,
                    "kind": row.kind,
                    "value": row.value,
                    "reason": row.reason,
                    "createdAt": row.created_at.isoformat(),
                    "createdBy": row.created_by,
                }
                for row in rows
            ]
        )
        return 0
    cells = [
        (
            short_id(r.tenant_id) if r.tenant_id else "(global)",
            r.kind,
            r.value,
            r.channel,
            r.reason,
            r.created_by,
        )
        for r in rows
    ]
    print(table(["TENANT", "KIND", "VALUE", "CHANNEL", "REASON", "BY"], cells))
    print(f"  {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    return 0


def _parse_file(args: argparse.Namespace) -> list[NewSuppression]:
    """Every row of the file as an entry; OpsError naming every bad line."""
    entries, problems = [], []
    for line in csvfile.read_lines(args.file, required=("kind", "value"), optional=("channel", "reason")):
        cells = line.values
        try:
            kind = SuppressionKind(cells["kind"].upper())
        except ValueError:
            problems.append(f"line {line.number}: kind {cells['kind']!r} is not EMAIL, DOMAIN or PHONE")
            continue
        channel = cells["channel"].upper() or args.channel
        if channel not in CHANNELS:
            problems.append(f"line {line.number}: channel {cells['channel']!r} is not EMAIL, WHATSAPP or ALL")
            continue
        try:
            value = normalized(kind, cells["value"])
        except ValueError as exc:
            problems.append(f"line {line.number}: {exc}")
            continue
        entries.append(NewSuppression(kind.value, value, channel, cells["reason"] or args.reason))
    csvfile.refuse(args.file, problems)
    return entries


async def run_import(args: argparse.Namespace, config: Config) -> int:
    entries = _parse_file(args)
    async with pg_connection(config) as conn:
        await _check_tenant(conn, args.tenant_id)
        async with conn.transaction():
            added = await insert_suppressions(
                conn, tenant_id=args.tenant_id, entries=entries, created_by=_author(args.by)
            )
    print(
        f"{args.file}: {len(entries)} entries for {_scope_name(args.tenant_id)}, {added} new, "
        f"{len(entries) - added} already there"
    )
    return 0
