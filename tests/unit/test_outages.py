"""The outage log: one WARNING when jobs first meet a dependency's fault, one INFO line when it is over."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
import redis.exceptions
from loguru import logger

from src.runtime.faults import Dependency
from src.runtime.outages import OutageLog

BOTH = frozenset({Dependency.POSTGRESQL, Dependency.REDIS})
PG_ONLY = frozenset({Dependency.POSTGRESQL})
REFUSED = redis.exceptions.ConnectionError("refused")
TOO_MANY = asyncpg.TooManyConnectionsError("sorry, too many clients already")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 0.1) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def shown() -> Iterator[list[str]]:
    """Lines the outage log writes at INFO and above."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(f"{message.record['level'].name} {message.record['message']}"),
        level="INFO",
    )
    try:
        yield lines
    finally:
        logger.remove(sink)


def test_an_outage_ends_only_by_a_later_job_that_uses_the_dependency(shown: list[str]) -> None:
    clock = Clock()
    faults = OutageLog(quiet_s=5, clock=clock)
    before = clock.tick()
    faults.retrying(Dependency.REDIS, REFUSED, job_try=1, max_tries=5, delay=1.0)
    faults.succeeded(BOTH, started_at=before)  # did its Redis part before the outage
    clock.tick(10)
    faults.succeeded(PG_ONLY, started_at=clock.tick())  # never touches Redis
    faults.retrying(Dependency.REDIS, REFUSED, job_try=2, max_tries=5, delay=2.0)
    clock.tick(1)
    faults.succeeded(BOTH, started_at=clock.tick())  # back, but not quiet for long enough yet
    assert len(shown) == 1, shown
    clock.tick(5)
    faults.succeeded(BOTH, started_at=clock.tick())

    assert len(shown) == 2, shown
    assert (
        shown[0]
        == "WARNING Redis unavailable to jobs (ConnectionError: refused); jobs retry with backoff, up to 5 tries"
    )
    assert shown[1] == "INFO Redis available to jobs again after 11.2s; 2 job tries were retried meanwhile"


def test_jobs_that_succeed_between_failures_do_not_end_the_outage(shown: list[str]) -> None:
    """PostgreSQL refusing some connections: the jobs on pooled connections succeed between the failures."""
    clock = Clock()
    faults = OutageLog(quiet_s=5, clock=clock)
    for n in range(200):  # 20 s of a job failing and a job succeeding every 0.1 s
        faults.retrying(Dependency.POSTGRESQL, TOO_MANY, job_try=1 + n % 4, max_tries=5, delay=1.0)
        started = clock.tick(0.05)
        faults.succeeded(BOTH, started_at=started)
        clock.tick(0.05)
    for _ in range(60):  # then 6 s of successes only
        faults.succeeded(BOTH, started_at=clock.tick())

    assert shown == [
        "WARNING PostgreSQL unavailable to jobs (TooManyConnectionsError: sorry, too many clients already); "
        "jobs retry with backoff, up to 5 tries",
        "INFO PostgreSQL available to jobs again after 19.9s; 200 job tries were retried meanwhile",
    ]


async def test_the_end_is_logged_after_the_quiet_period_even_without_another_job(shown: list[str]) -> None:
    faults = OutageLog(quiet_s=0.2)
    loop = asyncio.get_running_loop()
    faults.retrying(Dependency.POSTGRESQL, TOO_MANY, job_try=1, max_tries=5, delay=1.0)
    await asyncio.sleep(0.01)
    faults.succeeded(BOTH, started_at=loop.time())
    assert len(shown) == 1
    await asyncio.sleep(0.3)
    assert len(shown) == 2, shown
    assert shown[1].startswith("INFO PostgreSQL available to jobs again after 0.0s")
