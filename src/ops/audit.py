"""`audit`: what the tenant can show for a lead (GDPR art. 5(2)): its bases and objection, and every message
sent to it with the basis it went out on (outreach_messages, kept MESSAGE_RETENTION_DAYS)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from src.config import Config
from src.db import queries
from src.db.queries.compliance import LeadLaw, lead_law
from src.ops import argtypes
from src.ops.render import print_json, short_id, table
from src.ops.services import OpsError, pg_connection


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "audit", help="a lead's lawful bases and every message sent to it", description=__doc__
    )
    parser.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    parser.add_argument("--lead-id", required=True, type=argtypes.uuid)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def run(args: argparse.Namespace, config: Config) -> int:
    async with pg_connection(config) as conn:
        lead = await lead_law(conn, tenant_id=args.tenant_id, lead_id=args.lead_id)
        if lead is None:
            raise OpsError(f"lead {args.lead_id} not found for tenant {args.tenant_id}")
        messages = await queries.lead_messages(conn, tenant_id=args.tenant_id, lead_id=args.lead_id)
    if args.json:
        print_json(_as_json(args, lead, messages))
    else:
        print(_as_text(args, lead, messages))
    return 0


def _bases(lead: LeadLaw) -> dict[str, dict[str, str | None]]:
    return {
        "WHATSAPP": {
            "basis": lead.whatsapp_lawful_basis,
            "at": _when(lead.whatsapp_basis_at),
            "source": lead.whatsapp_basis_source,
        },
        "EMAIL": {
            "basis": lead.email_lawful_basis,
            "at": _when(lead.email_basis_at),
            "source": lead.email_basis_source,
        },
    }


def _as_json(args: argparse.Namespace, lead: LeadLaw, messages: list[queries.MessageRow]) -> dict[str, Any]:
    return {
        "tenantId": str(args.tenant_id),
        "leadId": str(args.lead_id),
        "company": lead.denumire,
        "bases": _bases(lead),
        "objectedAt": _when(lead.objected_at),
        "messages": [
            {
                "createdAt": _when(m.created_at),
                "scheduledAt": _when(m.scheduled_at),
                "channel": m.channel,
                "phoneId": str(m.phone_id) if m.phone_id else None,
                "queue": m.queue,
                "jobId": m.job_id,
                "basis": m.basis,
                "basisAt": _when(m.basis_at),
                "basisSource": m.basis_source,
            }
            for m in messages
        ],
    }


def _as_text(args: argparse.Namespace, lead: LeadLaw, messages: list[queries.MessageRow]) -> str:
    lines = [f"lead {args.lead_id} ({lead.denumire}) of tenant {args.tenant_id}"]
    for medium, basis in _bases(lead).items():
        given = (
            f"{basis['basis']} since {basis['at']} ({basis['source']})" if basis["basis"] else "none recorded"
        )
        lines.append(f"  {medium} basis: {given}")
    lines.append(f"  objected: {_when(lead.objected_at) or 'no'}")
    lines.append(f"  {len(messages)} message(s) recorded:")
    rows = [
        (_when(m.created_at), m.channel, short_id(m.phone_id) if m.phone_id else None, m.job_id, m.basis,
         _when(m.basis_at), m.basis_source)
        for m in messages
    ]  # fmt: skip
    if rows:
        lines.append(
            table(["RECORDED", "CHANNEL", "PHONE", "JOB", "BASIS", "GIVEN", "SOURCE"], rows, indent="    ")
        )
    return "\n".join(lines)
