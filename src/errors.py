"""Failure classes of a job and the one place that decides retry or give up.

Expected outcomes (no channel, no quota, outside hours) are values in the results, not exceptions.
An exception here is a failure: permanent ones fail the job at once, transient ones become arq `Retry`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.exceptions
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc


class JobError(Exception):
    """A permanent failure: retrying cannot help. Its message is what the operator reads."""

    code = "JOB_ERROR"

    def payload(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self), "retryable": False}


class InvalidJobInput(JobError):
    code = "INVALID_INPUT"

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message)
        self.fields = fields

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidJobInput:
        fields: list[str] = []
        problems: list[str] = []
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "(job argument)"
            if field not in fields:
                fields.append(field)
            problems.append(f"{field}: {error['msg']}")
        return cls("invalid job input: " + "; ".join(problems), fields)

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "fields": self.fields}


class NotFound(JobError):
    code = "NOT_FOUND"


class TenantMismatch(JobError):
    code = "TENANT_MISMATCH"


class ConfigurationError(JobError):
    """A tenant row the job cannot work with (unknown timezone, holiday country)."""

    code = "BAD_CONFIGURATION"


class TransientFaultsExhausted(JobError):
    code = "TRANSIENT_FAULTS_EXHAUSTED"


class Contention(Exception):
    """A concurrent writer changed the rows this job decided on; a retry on fresh data resolves it."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    Contention,
    OSError,
    asyncio.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    sa_exc.InterfaceError,
    sa_exc.OperationalError,
    sa_exc.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """A fault of the infrastructure (PostgreSQL or Redis unreachable), not of the job."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _TRANSIENT):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and isinstance(cause, _TRANSIENT)


def backoff_seconds(job_try: int, *, base: float, cap: float) -> float:
    """Exponential backoff for the retry after try number `job_try` (1-based): base, 2*base, ... cap."""
    return float(min(cap, base * 2 ** max(0, job_try - 1)))


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A failed job's stored result: JSON that names the error (arq would store the exception object)."""
    if isinstance(exc, JobError):
        return exc.payload()
    return {"error": type(exc).__name__, "message": str(exc) or repr(exc), "retryable": False}
