"""Pick-up on enqueue, without an idle worker spinning on Redis.

arq polls its queue every `poll_delay`: a job enqueued into an idle queue waits half a poll on average
(25 ms at POLL_DELAY_S=0.05) before a worker sees it, and an idle worker asks Redis every poll. Here an
idle queue worker blocks on a Redis pub/sub channel of its queue instead (`wake_channel`), up to
IDLE_POLL_S, or until the queue's earliest deferred job (a retry, a cron tick) is due if that is sooner.
Whoever enqueues into one of this service's own queues publishes on that channel (`wake_workers`): the
project's client and the ALL fan-out. A message only says "poll now"; the queue itself stays the truth,
so a lost message (a plain arq enqueuer, a pub/sub connection that dropped) costs at most IDLE_POLL_S of
pick-up latency, never a job. A worker that has taken jobs polls again after POLL_DELAY_S as arq does,
or at once when a message comes meanwhile; one with no room for another job (max_jobs) just waits. A
message polls at once, but never sooner than WAKE_GAP_SHARE x POLL_DELAY_S (10 ms) after the last poll:
a stream of enqueues that each publish (an ops script in a loop) would otherwise cost a poll per job,
where arq took them by the poll's batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis.exceptions
from arq.worker import Worker
from loguru import logger
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from src.config import DEFAULT_IDLE_POLL_S
from src.names import wake_channel

WAKE_GAP_SHARE = 0.2


async def wake_workers(redis: Redis, queue: str) -> None:
    """Tell the idle workers of `queue` that it has a job now."""
    await redis.publish(wake_channel(queue), b"")


class WakeOnEnqueue(Worker):
    """arq's Worker whose idle poll waits for a wake-up message (see the module's docstring)."""

    def __init__(self, *args: Any, idle_poll_s: float = DEFAULT_IDLE_POLL_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_poll_s = idle_poll_s
        self._found: int | None = None  # jobs the last poll read; None: it did not read the queue
        self._wake: PubSub | None = None
        self._polled_at = 0.0  # the event loop's time of the last poll
        self._wake_gap_s = WAKE_GAP_SHARE * self.poll_delay_s

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        self._found = len(job_ids)
        await super().start_jobs(job_ids)

    async def _poll_iteration(self) -> None:
        """arq's poll, repeated at once whenever a wake-up message ends the wait that follows it. After a
        poll that found the queue empty the wait is IDLE_POLL_S (see `_wait_for_work`); after one that
        took jobs it is the rest of POLL_DELAY_S, which arq would otherwise sleep through deaf: a job
        enqueued just after its predecessor finished (an ops script that awaits each job before the
        next) waited up to POLL_DELAY_S. Returns, for arq's own poll delay (by then used up), after a
        wait that ran its full length, or at once when the worker has no room for another job."""
        loop = asyncio.get_running_loop()
        while True:
            await self._drain_wake_messages()
            self._found = None
            self._polled_at = loop.time()
            await super()._poll_iteration()
            if self.burst:
                return
            if self._found == 0:
                wait = self.poll_delay_s if self.job_counter else await self._idle_wait()
            elif self.job_counter < self.max_jobs:
                wait = self.poll_delay_s - (loop.time() - self._polled_at)
            else:
                return
            if wait <= 0 or not await self._wait_for_work(wait):
                return

    async def _wait_for_work(self, wait: float) -> bool:
        """Wait for a wake-up message (True) or `wait`'s end (False). An empty queue's wait is IDLE_POLL_S
        while no job runs, or until the earliest deferred job's time if sooner; POLL_DELAY_S while jobs
        run, since a running job may put itself back deferred (arq's Retry) after this wait began."""
        started = time.monotonic()
        try:
            subscription = await self._subscription()
            message = await subscription.get_message(ignore_subscribe_messages=True, timeout=wait)
        except (redis.exceptions.RedisError, OSError):
            await self._drop_subscription()  # poll on the clock until it is made again
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
            return False
        if message is None and time.monotonic() - started >= wait:
            return False
        too_soon = self._polled_at + self._wake_gap_s - asyncio.get_running_loop().time()
        if too_soon > 0:
            await asyncio.sleep(too_soon)  # the enqueues meanwhile are taken by the same poll
        return True

    async def _idle_wait(self) -> float:
        earliest = await self.pool.zrange(self.queue_name, 0, 0, withscores=True)
        if not earliest:
            return self.idle_poll_s
        due_in = float(earliest[0][1]) / 1000 - time.time()
        return min(self.idle_poll_s, max(0.0, due_in))

    async def _subscription(self) -> PubSub:
        if self._wake is None:
            self._wake = self.pool.pubsub()
            await self._wake.subscribe(wake_channel(self.queue_name))
            logger.debug("queue {}: idle polls wait on {}", self.queue_name, wake_channel(self.queue_name))
        return self._wake

    async def _drop_subscription(self) -> None:
        broken, self._wake = self._wake, None
        if broken is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await broken.aclose()  # type: ignore[no-untyped-call]

    async def _drain_wake_messages(self) -> None:
        """Drop wake-ups already read by the socket: the poll about to run covers them."""
        if self._wake is None:
            return
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            # Drain the wake-ups that came while jobs ran: the poll about to run sees their jobs anyway.
            while await self._wake.get_message(ignore_subscribe_messages=True, timeout=0.0) is not None:
                continue
