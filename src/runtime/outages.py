"""Transient faults seen by jobs, logged once per outage instead of once per job try.

When PostgreSQL or Redis stops answering, every in-flight job fails and retries; one WARNING says so when
the first job meets the fault, and one INFO line says when it is over, and how many tries were retried in
between. The individual retries go to DEBUG.

An outage is over when jobs that use the dependency succeed and none has met the fault for QUIET_S. A
single success is not enough: when PostgreSQL refuses only some connections ("too many connections"), the
jobs holding a pooled connection succeed while the others fail, and ending the outage at each success
would log a WARNING and an INFO line per failed try. The success of a job that does not use the failing
dependency (select_channel during a Redis outage), or that started before the latest fault, says nothing
about it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from src.runtime.faults import Dependency, describe

QUIET_S = 5.0


@dataclass
class _Outage:
    since: float
    last_fault: float
    retried: int = 1
    back_at: float | None = None  # the first success after the latest fault
    check: asyncio.TimerHandle | None = None


class OutageLog:
    def __init__(self, *, quiet_s: float = QUIET_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet_s = quiet_s
        self._clock = clock
        self._outages: dict[Dependency, _Outage] = {}

    def retrying(
        self, dependency: Dependency, exc: BaseException, *, job_try: int, max_tries: int, delay: float
    ) -> None:
        if dependency is Dependency.CONCURRENT_WRITER:
            logger.info(
                "lost a race to a concurrent writer; retrying in {:.1f}s (try {} of {})",
                delay,
                job_try,
                max_tries,
            )
            return
        now = self._clock()
        outage = self._outages.get(dependency)
        if outage is None:
            self._outages[dependency] = _Outage(since=now, last_fault=now)
            logger.warning(
                "{} unavailable to jobs ({}); jobs retry with backoff, up to {} tries",
                dependency,
                describe(exc),
                max_tries,
            )
            return
        outage.last_fault, outage.back_at = now, None
        outage.retried += 1
        logger.debug(
            "{} still unavailable; retrying in {:.1f}s (try {} of {})", dependency, delay, job_try, max_tries
        )

    def succeeded(self, uses: frozenset[Dependency], *, started_at: float) -> None:
        """A job that talks to `uses` succeeded; it started at `started_at` (the clock's time)."""
        if not self._outages:
            return
        now = self._clock()
        for dependency, outage in list(self._outages.items()):
            if started_at <= outage.last_fault or (
                dependency not in uses and dependency is not Dependency.NETWORK
            ):
                continue
            if outage.back_at is None:
                outage.back_at = now
            self._end_if_quiet(dependency)

    def _end_if_quiet(self, dependency: Dependency) -> None:
        outage = self._outages.get(dependency)
        if outage is None or outage.back_at is None:
            return
        quiet_for = self._clock() - outage.last_fault
        if quiet_for < self._quiet_s:
            self._check_later(dependency, outage, self._quiet_s - quiet_for)
            return
        del self._outages[dependency]
        if outage.check is not None:
            outage.check.cancel()
        logger.info(
            "{} available to jobs again after {:.1f}s; {} job tries were retried meanwhile",
            dependency,
            outage.back_at - outage.since,
            outage.retried,
        )

    def _check_later(self, dependency: Dependency, outage: _Outage, delay: float) -> None:
        """Say the outage is over even when no job succeeds after the quiet period: one pending check per
        outage, which looks again when it finds the dependency not yet quiet."""
        if outage.check is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside an event loop (unit tests): the next success ends it
            return
        outage.check = loop.call_later(delay, self._checked, dependency)

    def _checked(self, dependency: Dependency) -> None:
        outage = self._outages.get(dependency)
        if outage is not None:
            outage.check = None
            self._end_if_quiet(dependency)


OUTAGES = OutageLog()
