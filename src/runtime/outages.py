"""Transient faults seen by jobs, logged once per outage instead of once per job try.

When PostgreSQL or Redis stops answering, every in-flight job fails and retries; one WARNING says so when
the first job meets the fault, and one INFO line says when a job that uses that dependency and started after
the first fault succeeds, and how many tries were retried in between. The individual retries go to DEBUG.
The success of a job that does not use the failing dependency (select_channel during a Redis outage), or
that did its part before the fault, says nothing about it and does not end the outage.
"""

from __future__ import annotations

import time

from loguru import logger

from src.runtime.faults import Dependency, describe


class OutageLog:
    def __init__(self) -> None:
        self._since: dict[Dependency, float] = {}
        self._retried: dict[Dependency, int] = {}

    def retrying(
        self, dependency: Dependency, exc: BaseException, *, job_try: int, max_tries: int, delay: float
    ) -> None:
        fault = describe(exc)
        if dependency is Dependency.CONCURRENT_WRITER:
            logger.info(
                "lost a race to a concurrent writer; retrying in {:.1f}s (try {} of {})",
                delay,
                job_try,
                max_tries,
            )
            return
        self._retried[dependency] = self._retried.get(dependency, 0) + 1
        if dependency in self._since:
            logger.debug(
                "{} still unavailable; retrying in {:.1f}s (try {} of {})",
                dependency,
                delay,
                job_try,
                max_tries,
            )
            return
        self._since[dependency] = time.monotonic()
        logger.warning(
            "{} unavailable to jobs ({}); jobs retry with backoff, up to {} tries",
            dependency,
            fault,
            max_tries,
        )

    def succeeded(self, uses: frozenset[Dependency], *, started_at: float) -> None:
        """A job that talks to `uses` succeeded. A dependency that was down is back when that job started
        (time.monotonic()) after the outage was first seen: a job that did its Redis work just before the
        outage can still succeed during it."""
        if not self._since:
            return
        for dependency, since in list(self._since.items()):
            if started_at <= since or (dependency not in uses and dependency is not Dependency.NETWORK):
                continue
            del self._since[dependency]
            logger.info(
                "{} available to jobs again after {:.1f}s; {} job tries were retried meanwhile",
                dependency,
                time.monotonic() - since,
                self._retried.pop(dependency, 0),
            )


OUTAGES = OutageLog()
