from __future__ import annotations

import asyncpg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from src.errors import (
    InvalidJobInput,
    NotFound,
    backoff_seconds,
    error_payload,
    is_transient,
)
from src.serialization import dumps, loads


@pytest.mark.parametrize(
    ("job_try", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0)],
)
def test_backoff_doubles_up_to_the_cap(job_try: int, expected: float) -> None:
    assert backoff_seconds(job_try, base=1.0, cap=30.0) == expected


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        OSError("network unreachable"),
        TimeoutError(),
        redis.exceptions.ConnectionError("Error 111 connecting to localhost:6379"),
        redis.exceptions.TimeoutError("timed out"),
        asyncpg.CannotConnectNowError("starting up"),
        sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError()),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    ],
)
def test_infrastructure_faults_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        NotFound("lead x not found"),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        redis.exceptions.ResponseError("WRONGTYPE"),
    ],
)
def test_other_failures_are_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_failed_job_result_is_readable_json_naming_the_error() -> None:
    error = InvalidJobInput("invalid job input: leadId: Field required", ["leadId"])
    stored = loads(dumps({"s": False, "r": error}))
    assert stored["r"] == {
        "error": "INVALID_INPUT",
        "message": "invalid job input: leadId: Field required",
        "retryable": False,
        "fields": ["leadId"],
    }
    assert error_payload(RuntimeError("boom")) == {
        "error": "RuntimeError",
        "message": "boom",
        "retryable": False,
    }


def test_faults_are_attributed_to_their_dependency() -> None:
    from src.errors import Contention
    from src.faults import dependency_of

    assert dependency_of(redis.exceptions.ConnectionError("refused")) == "Redis"
    assert dependency_of(sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())) == "PostgreSQL"
    assert dependency_of(Contention("lost a race")) == "a concurrent writer"
    assert dependency_of(ConnectionRefusedError(111, "refused")) == "the network"
