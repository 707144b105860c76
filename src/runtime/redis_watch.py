"""Whether Redis answers, and whether it still holds what it was given: each change said once.

The supervisor asks Redis for a marker key every PROBE_INTERVAL_S, with REDIS_SOCKET_TIMEOUT_S to answer.
- No answer, whether the connection drops or Redis hangs (a frozen process, a partition): one WARNING when
  it starts, one INFO line when Redis answers again. A hang ends no arq loop, so without the probe it was
  silent. Behind Sentinel a failover is one such outage: the old primary stops answering, and the probe
  finds the promoted replica through the sentinels.
- An answer without the marker, after this process saw it: Redis came back empty (restarted without
  persistence, flushed, failed over to an empty replica) and every queue, result, quota counter and
  reservation is gone. One ERROR says what was lost and where the operator finds what to do; then the
  marker is set again, so the next loss is seen too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from secrets import token_hex

import redis.exceptions
from loguru import logger
from redis.asyncio import Redis

from src.names import REDIS_MARKER_KEY
from src.runtime.faults import describe

PROBE_INTERVAL_S = 1.0


class RedisWatch:
    def __init__(self, redis: Redis, *, timeout_s: float, on_back: Callable[[], int]) -> None:
        """`on_back` restarts what the outage stopped and returns how many queue workers it restarts."""
        self._redis = redis
        self._timeout_s = timeout_s
        self._on_back = on_back
        self.down_since: float | None = None
        self._marker: str | None = None  # the marker's value as this process last saw it

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def lost(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning("Redis unreachable ({}): queue workers paused until it answers", describe(exc))

    async def run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def probe(self) -> bool:
        """One round trip; False when Redis does not answer in time."""
        try:
            async with asyncio.timeout(self._timeout_s):
                marker = await self._redis.get(REDIS_MARKER_KEY)
                if marker is None or marker.decode() != self._marker:
                    await self._marker_changed(marker)
        except (redis.exceptions.RedisError, OSError) as exc:  # TimeoutError is an OSError
            self.lost(exc)
            return False
        if self.down_since is not None:
            self._back(time.monotonic() - self.down_since)
        return True

    def _back(self, after_s: float) -> None:
        self.down_since = None
        restarting = self._on_back()
        logger.info(
            "Redis reachable again after {:.1f}s{}",
            after_s,
            f": restarting {restarting} queue workers" if restarting else "",
        )

    async def _marker_changed(self, marker: bytes | None) -> None:
        if self._marker is not None:
            logger.error(
                "Redis has lost its data: the marker {} (set {}) is {}. Lost with it: the queued jobs "
                "(the four job queues and the senders' q:wa:* and q:email:* queues), job results, and "
                "today's quota counters and reservations, so phones can pass their daily_limit today. "
                "README, Troubleshooting, 'Redis has lost its data' says what to do.",
                REDIS_MARKER_KEY,
                self._marker,
                "gone" if marker is None else f"another one ({marker.decode()})",
            )
        stamp = (
            f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} by {socket.gethostname()}:{os.getpid()} #{token_hex(3)}"
        )
        await self._redis.set(REDIS_MARKER_KEY, stamp, nx=True)
        current = await self._redis.get(REDIS_MARKER_KEY)
        self._marker = current.decode() if current is not None else None
