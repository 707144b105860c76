"""`tenants`: the tenants, with their phones and leads, to find the ids the other commands take."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from src.config import Config
from src.db import queries
from src.ops.render import print_json, table
from src.ops.services import database


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("tenants", help="list tenants with their phones, leads and due leads")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    async with database(config) as engine, engine.connect() as conn:
        rows = await queries.tenants_overview(conn, now=datetime.now(UTC))
    if args.json:
        print_json(
            [
                {
                    "tenantId": str(t.id),
                    "name": t.name,
                    "status": t.status,
                    "timezone": t.timezone,
                    "phones": t.phones,
                    "leads": t.leads,
                    "dueLeads": t.due_leads,
                }
                for t in rows
            ]
        )
    elif not rows:
        print("  (no tenants; `cerniq-ops seed-demo` creates a demo tenant)")
    else:
        print(
            table(
                ["TENANT ID", "NAME", "STATUS", "TIMEZONE", "PHONES", "LEADS", "DUE NOW"],
                [(t.id, t.name, t.status, t.timezone, t.phones, t.leads, t.due_leads) for t in rows],
            )
        )
    return 0
