from __future__ import annotations

import asyncpg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from src.errors import InvalidJobInput, NotFound, error_payload
from src.redis_io.codec import dumps, loads
from src.redis_io.replicas import ReplicaAckTimeout
from src.runtime.faults import Contention, Dependency, backoff_seconds, transient_fault


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
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        ReplicaAckTimeout("0 of 1 replicas acknowledged the write within 500 ms"),
        asyncpg.CannotConnectNowError("starting up"),
        sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError()),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    ],
)
def test_infrastructure_faults_are_transient(exc: BaseException) -> None:
    assert transient_fault(exc) is not None


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
    assert transient_fault(exc) is None


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
    assert transient_fault(redis.exceptions.ConnectionError("refused")) is Dependency.REDIS
    assert transient_fault(redis.exceptions.ReadOnlyError("READONLY")) is Dependency.REDIS
    assert transient_fault(ReplicaAckTimeout("0 of 1")) is Dependency.REDIS
    assert (
        transient_fault(sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError()))
        is Dependency.POSTGRESQL
    )
    assert transient_fault(Contention("lost a race")) is Dependency.CONCURRENT_WRITER
    # a statement on a pooled connection whose termination by the server was just read
    assert (
        transient_fault(
            asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
        )
        is Dependency.POSTGRESQL
    )
    assert transient_fault(ConnectionRefusedError(111, "refused")) is Dependency.NETWORK


def test_a_connection_lost_during_a_watch_is_a_redis_fault() -> None:
    def give_up_the_watch() -> None:
        raise redis.exceptions.WatchError("A ConnectionError occurred on while watching one or more keys")

    def lost_while_watching() -> None:  # the shape of redis-py's Pipeline._disconnect_raise_reset
        try:
            raise redis.exceptions.ConnectionError("Connection reset by peer")
        except redis.exceptions.ConnectionError:
            give_up_the_watch()

    with pytest.raises(redis.exceptions.WatchError) as caught:
        lost_while_watching()
    assert transient_fault(caught.value) is Dependency.REDIS
    assert transient_fault(ConnectionRefusedError(111, "refused")) is not None
    assert transient_fault(redis.exceptions.WatchError("Watched variable changed.")) is None
    assert transient_fault(RuntimeError("a bug")) is None
