"""Redis fails over under load, and nothing is lost: a real Sentinel failover (tests/support/sentinel.py).

A primary, a replica and three sentinels (quorum 2, down after 2 s) on ports of their own. Three worker
processes (`Settings`, `DispatchSettings`, `RouterSettings`) on `redis+sentinel://` with
REDIS_MIN_REPLICA_ACKS=1 serve a steady stream of dispatch and route jobs while a sender takes the messages
off their queues. The replica lags (cut off for 1 s) right before the primary is SIGKILLed, so the
primary dies holding writes its replica never got; the sentinels promote the replica; the killed server
comes back as its replica. The load goes on until the phones' quota is used up, then every dispatch and
route job completes (those the kill interrupted run again once their in-progress keys expire).

Then, counted from PostgreSQL, the new primary and what was sent: no phone over its daily_limit by counter
or by messages, no lead with two messages, no lead marked dispatched without its message, every routed
message a route job reported present, nothing left in the outbox. Each process followed the new primary
without a restart, saying so once. The figures are printed (tests/support/failover.py, Report.summary);
bench/failover_loss.py runs the same scenario without the setting and counts what it loses.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.failover import run_failover
from tests.support.sentinel import SentinelTopology
from tests.support.workers import Workers, lines


@pytest.fixture
async def topology(deps: Deps) -> AsyncIterator[SentinelTopology]:
    """A primary, a replica and three sentinels, started once the test's tables are empty."""
    servers = SentinelTopology(replicas=1)
    try:
        await servers.start()
        yield servers
    finally:
        servers.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_failover_under_load_loses_nothing(
    topology: SentinelTopology, workers: Workers, factory: Factory, engine: AsyncEngine, today: date
) -> None:
    report = await run_failover(topology, workers, factory, engine, today, acks=1)
    print("\n" + report.summary())
    tally = report.tally
    assert report.failovers == 1, "the sentinels failed over more than once: see DOWN_AFTER_MS"

    assert not {name: value for name, value in tally.violations().items() if value}, report.summary()
    assert tally.outcomes["failed"] == 0, tally.failures[:3]
    met = sum(lines(output, "Redis unavailable to jobs") for output in report.outputs.values())
    assert met > 0, "no job met the failover: the test proved nothing"
    assert tally.routed_acknowledged > 100
    assert tally.quota_used == tally.quota_total, "the phones' limits never bound: over-limit proved nothing"

    for name, output in report.outputs.items():
        assert report.exit_codes[name] is None, f"{name} exited:\n{output}"
        assert lines(output, r"\| WARNING +\|.*Redis unreachable") == 1, output
        assert lines(output, r"\| INFO +\|.*Redis reachable again after") == 1, output
        assert lines(output, "Redis unavailable to jobs") <= 1, output
        noise = re.findall(
            r"^.*\| (?:WARNING|ERROR|CRITICAL) +\| (?!.*(?:relayed \d+ jobs of )).*$",
            output,
            flags=re.MULTILINE,
        )
        print(f"{name}:\n  " + "\n  ".join(noise))
        assert len(noise) <= 2, noise
