"""Does a PostgreSQL or Redis URL answer? Used by scripts/demo.sh, which needs no client binaries then.

    python -m src.ops.probe postgres URL [--create-database]   exit 0: answers (database created if asked)
    python -m src.ops.probe redis URL                          exit 0: answers
Any other exit code: it does not; the reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from src.config import libpq_url
from src.redis_io.connection import close_redis, create_redis_client

TIMEOUT_S = 3.0


async def postgres(url: str, *, create_database: bool) -> None:
    url = libpq_url(url)
    try:
        conn = await asyncpg.connect(url, timeout=TIMEOUT_S)
    except asyncpg.InvalidCatalogNameError:
        if not create_database:
            raise
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=TIMEOUT_S)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(url, timeout=TIMEOUT_S)
    await conn.close()


async def redis(url: str) -> None:
    client = create_redis_client(url, max_connections=8, timeout_s=TIMEOUT_S)
    try:
        await client.ping()
    finally:
        await close_redis(client)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m src.ops.probe")
    parser.add_argument("service", choices=["postgres", "redis"])
    parser.add_argument("url")
    parser.add_argument("--create-database", action="store_true")
    args = parser.parse_args()
    try:
        if args.service == "postgres":
            asyncio.run(postgres(args.url, create_database=args.create_database))
        else:
            asyncio.run(redis(args.url))
    except Exception as exc:
        print(f"{args.service} does not answer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
