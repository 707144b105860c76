"""arq Workers, one per queue, in one event loop: started, watched, restarted, drained.

arq gives a Worker exactly one queue, and a Redis disconnect ends `Worker.main()`. The supervisor owns
one Worker per queue (handle_signals=False on each) and one SIGTERM/SIGINT handler for all of them, in
the all-queues process and in each one-queue process alike (src/worker.py):
- a worker whose loop dies is restarted; when Redis is the cause, it waits until Redis answers again and
  restarts every stopped worker. A RedisWatch (src/runtime/redis_watch.py) probes Redis meanwhile and
  all along: it logs an outage once when it starts (a drop, or a hang that ends no loop), once when it
  ends, and once an ERROR when Redis comes back without its data;
- on a signal every worker stops taking jobs, in-flight jobs get `shutdown_grace_s` to finish, and what
  is left is cancelled (arq puts a cancelled job back in its queue, so it runs again elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker
from loguru import logger
from redis.asyncio import Redis

from src.config import Config
from src.names import ALL_QUEUES_HEALTH_KEY, Queue
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.connection import arq_redis_settings, close_redis
from src.runtime.faults import transient_fault
from src.runtime.redis_watch import RedisWatch
from src.runtime.wakeup import WakeOnEnqueue

WorkerFactory = Callable[[Queue, ArqRedis], Worker]
_RESTART_BACKOFF_MAX_S = 30.0


@dataclass
class _Slot:
    queue: Queue
    worker: Worker | None = None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    restart_at: float = 0.0


class SupervisedWorker(WakeOnEnqueue):
    """arq's Worker, with its result writes made safe to abandon.

    arq writes a job's outcome in a task shielded from cancellation (`asyncio.shield(finish_job(...))`).
    When the supervisor cancels the jobs of a worker that Redis took down, that shielded write carries
    on alone and fails too, and asyncio would report its exception as "Task exception was never
    retrieved" with a traceback, once per job. Nothing is lost: the job's in-progress key expires and it
    runs again. So the write's failure is retrieved here and logged at DEBUG; where arq still awaits the
    write, it sees the exception exactly as before.
    """

    async def finish_job(self, job_id: str, *args: Any, **kwargs: Any) -> None:
        _retrieve_on_failure(job_id)
        await super().finish_job(job_id, *args, **kwargs)

    async def finish_failed_job(self, job_id: str, *args: Any, **kwargs: Any) -> None:
        _retrieve_on_failure(job_id)
        await super().finish_failed_job(job_id, *args, **kwargs)


def _retrieve_on_failure(job_id: str) -> None:
    def retrieve(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.debug("outcome of job {} not written: {}: {}", job_id, type(exc).__name__, exc)

    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(retrieve)


class QueueSupervisor:
    def __init__(
        self,
        config: Config,
        queues: Sequence[Queue],
        make_worker: WorkerFactory,
        *,
        redis: Redis,
        health_key: str | None = ALL_QUEUES_HEALTH_KEY,
    ) -> None:
        """`health_key`: the process's own key, kept while every queue worker runs; None for a process of
        one queue, whose worker keeps the queue's key itself."""
        self._config = config
        self._redis = redis
        self._health_key = health_key
        # No retries inside create_pool: the supervisor retries, and logs once per outage.
        self._redis_settings = dataclasses.replace(arq_redis_settings(config.redis_url), conn_retries=0)
        self._slots = [_Slot(queue) for queue in queues]
        self._make_worker = make_worker
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._watch = RedisWatch(
            redis, timeout_s=config.redis_socket_timeout_s, on_back=self._restart_stopped
        )
        self.restarts = 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            return
        logger.info(
            "{} received: draining {} queue workers (grace {:.0f}s)",
            sig.name,
            len(self._slots),
            self._config.shutdown_grace_s,
        )
        self.stop()

    @property
    def workers(self) -> dict[Queue, Worker | None]:
        return {slot.queue: slot.worker for slot in self._slots}

    async def run(self) -> None:
        """Run until `stop()` or a signal; then drain every worker and return."""
        background = [asyncio.create_task(self._watch.run())]
        if self._health_key:
            background.append(asyncio.create_task(self._record_health()))
        try:
            while not self._stop.is_set():
                await self._start_due_workers()
                self._wake.clear()
                waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
                waiting += [slot.task for slot in self._slots if slot.task is not None]
                timeout = self._next_restart_in()
                done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waiting[0].cancel()
                for slot in self._slots:
                    if slot.task is not None and slot.task in done:
                        await self._on_worker_exit(slot)
        finally:
            for task in background:
                task.cancel()
            await self._drain()

    # ------------------------------------------------------------------ starting and restarting

    def _next_restart_in(self) -> float | None:
        pending = [slot.restart_at for slot in self._slots if slot.task is None]
        if not pending or self._watch.down:  # the watch wakes the loop when Redis answers again
            return None
        return max(0.05, min(pending) - time.monotonic())

    def _restart_stopped(self) -> int:
        stopped = [slot for slot in self._slots if slot.task is None]
        for slot in stopped:
            slot.restart_at = time.monotonic()
        self._wake.set()
        return len(stopped)

    async def _start_due_workers(self) -> None:
        if self._watch.down:
            return
        due = [slot for slot in self._slots if slot.task is None and slot.restart_at <= time.monotonic()]
        for slot in due:
            try:
                pool = await create_pool(
                    self._redis_settings,
                    job_serializer=job_serializer,
                    job_deserializer=job_deserializer,
                    default_queue_name=slot.queue.value,
                )
            except (redis.exceptions.RedisError, OSError) as exc:
                self._watch.lost(exc)
                slot.restart_at = time.monotonic() + 1.0
                continue
            slot.worker = self._make_worker(slot.queue, pool)
            slot.task = asyncio.create_task(slot.worker.async_run(), name=f"worker:{slot.queue.value}")

    async def _on_worker_exit(self, slot: _Slot) -> None:
        assert slot.task is not None
        assert slot.worker is not None
        exc = slot.task.exception() if not slot.task.cancelled() else None
        await self._discard(slot.worker)
        slot.task, slot.worker = None, None
        self.restarts += 1
        # A queue worker talks only to Redis: any transient fault that ends its loop is a Redis outage.
        if exc is not None and transient_fault(exc) is not None:
            self._watch.lost(exc)
            slot.restart_at = time.monotonic()
            return
        slot.failures += 1
        delay = min(_RESTART_BACKOFF_MAX_S, 2 ** (slot.failures - 1))
        slot.restart_at = time.monotonic() + delay
        if exc is None:
            logger.error("queue worker {} stopped; restarting in {:.0f}s", slot.queue.value, delay)
        else:
            logger.opt(exception=exc).error(
                "queue worker {} died ({}); restarting in {:.0f}s",
                slot.queue.value,
                type(exc).__name__,
                delay,
            )

    async def _close(self, worker: Worker) -> None:
        """Worker.close() without its "shutdown on SIGUSR1" line: cancel what is left (arq puts a
        cancelled job back in its queue), stop the poll loop, drop the health key, close the pool."""
        for task in worker.tasks.values():
            task.cancel()
        if worker.main_task is not None:
            worker.main_task.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await worker.pool.delete(worker.health_check_key)
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await close_redis(worker.pool)
        logger.info(
            "queue {} stopped: {} jobs complete, {} failed, {} retried",
            worker.queue_name,
            worker.jobs_complete,
            worker.jobs_failed,
            worker.jobs_retried,
        )

    async def _discard(self, worker: Worker) -> None:
        """Forget a dead worker: its in-flight jobs are cancelled and run again after their in-progress
        keys expire; its pool is closed without waiting on Redis."""
        tasks = list(worker.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close_redis(worker.pool), timeout=1)

    # ------------------------------------------------------------------ health and shutdown

    async def _record_health(self) -> None:
        """The all-queues health key, for `arq src.worker.Settings --check`: set while every queue
        worker runs, expiring one second after the interval like arq's own per-queue keys."""
        assert self._health_key
        interval = self._config.health_check_interval_s
        while True:
            alive = [
                slot.queue.value for slot in self._slots if slot.task is not None and not slot.task.done()
            ]
            if len(alive) < len(self._slots):
                await asyncio.sleep(min(1.0, interval))
                continue
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._redis.set(self._health_key, " ".join(alive), px=int((interval + 1) * 1000))
            await asyncio.sleep(interval)

    async def _drain(self) -> None:
        running = [slot for slot in self._slots if slot.worker is not None]
        for slot in running:
            assert slot.worker is not None
            slot.worker.allow_pick_jobs = False
        in_flight = [task for slot in running if slot.worker for task in slot.worker.tasks.values()]
        if in_flight:
            await asyncio.wait(in_flight, timeout=self._config.shutdown_grace_s or None)
        left = sum(not task.done() for task in in_flight)
        if left:
            logger.warning("grace period over: cancelling {} jobs, they stay queued and run again", left)
        for slot in running:
            assert slot.worker is not None
            await self._close(slot.worker)
            if slot.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await slot.task
        if self._health_key:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._redis.delete(self._health_key)
        logger.info("all queue workers stopped")
