"""PostgreSQL and Redis for the ops tool: connected on demand, one clear line when they do not answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from src.client import OutreachClient
from src.config import Config
from src.db import queries
from src.runtime.deps import create_engine
from src.runtime.faults import Dependency, transient_fault

# Exit codes of every command (README, "Ops CLI").
EXIT_FAILED = 1  # the command ran and failed: a job failed, a duplicate phone, a job not found
EXIT_USAGE = 2  # bad flags or configuration (argparse uses 2 as well)
EXIT_UNREACHABLE = 3  # PostgreSQL or Redis does not answer


class OpsError(Exception):
    """A failure the operator can act on; its message is the one line printed."""

    exit_code = EXIT_FAILED


class UsageError(OpsError):
    exit_code = EXIT_USAGE


class ServiceUnavailable(OpsError):
    exit_code = EXIT_UNREACHABLE


def redacted(url: str) -> str:
    """The URL without its password, fit for an error message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        return _reason(cause)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def database(config: Config) -> AsyncIterator[AsyncEngine]:
    """An engine whose database answers and has the schema; ServiceUnavailable otherwise."""
    engine = create_engine(config)
    url = redacted(config.database_url_sync_scheme)
    try:
        try:
            async with engine.connect() as conn:
                ready = await queries.database_ready(conn)
        except Exception as exc:
            raise ServiceUnavailable(
                f"PostgreSQL is unreachable at {url} ({_reason(exc)}); set DATABASE_URL"
            ) from None
        if not ready:
            raise ServiceUnavailable(
                f"the database at {url} has no tables yet: run `.venv/bin/alembic upgrade head`"
            )
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def pg_connection(config: Config) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to a database that answers and has the schema (`database`), for the
    commands that run the jobs' own statements (src/db/queries on asyncpg)."""
    async with database(config) as engine, engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection


@asynccontextmanager
async def redis_client(config: Config) -> AsyncIterator[OutreachClient]:
    """The enqueue client on a Redis that answers; ServiceUnavailable otherwise."""
    url = redacted(config.redis_url)
    try:
        connection = OutreachClient.connect(config.redis_url)
        client = await connection.__aenter__()
    except Exception as exc:
        raise ServiceUnavailable(f"Redis is unreachable at {url} ({_reason(exc)}); set REDIS_URL") from None
    try:
        yield client
    finally:
        await connection.__aexit__(None, None, None)


def unreachable(exc: BaseException, config: Config) -> ServiceUnavailable | None:
    """A connection lost in the middle of a command, as the one line to print; None for other errors."""
    match transient_fault(exc):
        case Dependency.REDIS:
            return ServiceUnavailable(f"lost Redis at {redacted(config.redis_url)} ({_reason(exc)})")
        case Dependency.POSTGRESQL:
            return ServiceUnavailable(
                f"lost PostgreSQL at {redacted(config.database_url_sync_scheme)} ({_reason(exc)})"
            )
        case Dependency.NETWORK:
            return ServiceUnavailable(f"lost a connection ({_reason(exc)})")
        case _:
            return None
