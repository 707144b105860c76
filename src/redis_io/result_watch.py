"""The results a client's callers are waiting for, read for all of them at once.

A caller awaiting a job's result used to read that job's result key every 5 ms (src/client.py), so N
callers awaiting at once sent N reads every 5 ms: an ops script awaiting 100 jobs kept a core of its own
process busy and sent Redis ~13,000 GETs a second, and with 500 each key was read only every ~43 ms
(bench/awaiting_callers.py). Now a caller reads its result once itself; if it is not there yet, it
waits here, where one task per client reads every awaited result key in one round trip a tick (MGET,
in chunks) and hands each stored result to the callers awaiting it: a tick costs the same round trip
for one waiting caller as for a thousand.

A caller that gives up (its timeout, or its task cancelled) leaves the watch; the task ends when nobody
waits, and a new waiter starts it again. A Redis error while reading is raised to every caller waiting
then, as their own read would have raised it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from arq.constants import result_key_prefix
from arq.jobs import JobResult, deserialize_result
from redis.asyncio import Redis

# Keys per MGET: one round trip carries every chunk (a pipeline), each chunk a command Redis answers in
# well under a millisecond.
CHUNK = 500


class ResultWatch:
    def __init__(self, redis: Redis, *, deserializer: Callable[[bytes], Any]) -> None:
        self._redis = redis
        self._deserializer = deserializer
        # job id -> the futures of the callers awaiting it, each with the poll delay it asked for
        self._waiting: dict[str, dict[asyncio.Future[JobResult], float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        """Callers waiting now."""
        return sum(len(futures) for futures in self._waiting.values())

    async def wait(self, job_id: str, timeout: float, poll_delay: float) -> JobResult | None:
        """The job's stored result, or None when `timeout` seconds pass without one. The first read is a
        tick away: the caller has just read the key itself."""
        if self._closed:
            raise RuntimeError("the client is closed")
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job_id, {})[future] = poll_delay
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="result-watch")
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # it came as the timeout fired
            return None
        finally:
            self._leave(job_id, future)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(RuntimeError("the client is closed"))

    def _leave(self, job_id: str, future: asyncio.Future[JobResult]) -> None:
        futures = self._waiting.get(job_id)
        if futures is None:
            return
        futures.pop(future, None)
        if not futures:
            del self._waiting[job_id]

    async def _watch(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(min(min(futures.values()) for futures in self._waiting.values()))
                if self._waiting:
                    await self._read_once()
        except Exception as exc:  # a Redis fault: each waiting caller's own read would have raised it
            self._fail_all(exc)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _read_once(self) -> None:
        job_ids = list(self._waiting)
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(job_ids), CHUNK):
            pipe.mget([result_key_prefix + job_id for job_id in job_ids[start : start + CHUNK]])
        values = [value for chunk in await pipe.execute() for value in chunk]
        for job_id, raw in zip(job_ids, values, strict=True):
            if raw is None:
                continue
            futures = self._waiting.pop(job_id, {})
            try:
                outcome: JobResult | Exception = deserialize_result(raw, deserializer=self._deserializer)
            except Exception as exc:
                outcome = exc
            _settle(futures, outcome)

    def _fail_all(self, exc: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            _settle(futures, exc)


def _settle(futures: dict[asyncio.Future[JobResult], float], outcome: JobResult | BaseException) -> None:
    """Each still-waiting future gets the result, or the exception to raise."""
    for future in futures:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
