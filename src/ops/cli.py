"""`python -m src.ops` / `cerniq-ops`: the ops command-line tool.

Exit codes: 0 done; 1 the command failed (a job failed, a duplicate phone, a job not found); 2 bad flags or
configuration; 3 PostgreSQL or Redis does not answer. A failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from src.config import Config
from src.ops import (
    audit,
    basis,
    demo,
    enqueue,
    forecast,
    job,
    objection,
    phones,
    seed,
    status,
    suppress,
    tenants,
)
from src.ops.services import EXIT_USAGE, OpsError, unreachable

PROG = "cerniq-ops"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate the Cerniq outreach workers. Connections come from DATABASE_URL and "
        "REDIS_URL (environment or .env).",
        epilog="exit codes: 0 done, 1 failed, 2 bad usage or configuration, "
        "3 PostgreSQL or Redis unreachable",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    enqueue.add_parser(commands)
    status.add_parser(commands)
    forecast.add_parser(commands)
    job.add_parser(commands)
    phones.add_parser(commands)
    tenants.add_parser(commands)
    suppress.add_parser(commands)
    basis.add_parser(commands)
    objection.add_parser(commands)
    audit.add_parser(commands)
    seed.add_parser(commands)
    demo.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = Config()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        print(f"{PROG}: invalid configuration: {problems}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = asyncio.run(args.handler(args, config))
    except OpsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        lost = unreachable(exc, config)
        if lost is None:
            raise
        print(f"{PROG}: {lost}", file=sys.stderr)
        return lost.exit_code
    return code
