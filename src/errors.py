"""The permanent failures of a job, each with the code its stored result carries (README, failure codes).

Expected outcomes (no channel, no quota, outside hours) are values in the results, not exceptions. A
JobError fails the job at once, without a retry; which other exceptions are worth a retry is decided by
src/runtime/faults.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


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


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A failed job's stored result: JSON that names the error (arq would store the exception object)."""
    if isinstance(exc, JobError):
        return exc.payload()
    return {"error": type(exc).__name__, "message": str(exc) or repr(exc), "retryable": False}
