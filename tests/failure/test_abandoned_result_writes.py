"""A queue worker that Redis took down leaves no "Task exception was never retrieved" behind.

arq writes a job's outcome inside `asyncio.shield(...)`. When the supervisor cancels the jobs of a dead
worker, a write still waiting on Redis carries on alone; when it then fails, asyncio reports the lost
exception with a traceback, once per job, in the middle of an outage the operator should see as one line.
The stock Worker shows the report (so the test can tell), the supervisor's Worker does not.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from typing import Any

import pytest
from arq.connections import create_pool
from arq.worker import Worker, func

from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.connection import arq_redis_settings
from src.runtime.supervisor import SupervisedWorker
from tests.support.servers import RedisServer


async def _abandon_a_result_write(worker_class: type[Worker], server: RedisServer) -> list[dict[str, Any]]:
    """Run one job whose outcome write hangs on a frozen Redis, cancel the job as the supervisor does,
    let Redis die so that the write fails, and return what asyncio reported to the loop's handler."""
    process = server.process
    assert process is not None
    frozen = asyncio.Event()

    async def freeze_redis(ctx: dict[str, Any]) -> str:
        process.send_signal(signal.SIGSTOP)
        frozen.set()
        return "done"

    pool = await create_pool(
        arq_redis_settings(server.url), job_serializer=job_serializer, job_deserializer=job_deserializer
    )
    worker = worker_class(
        functions=[func(freeze_redis, name="freeze_redis")],
        redis_pool=pool,
        queue_name="q:abandon",
        poll_delay=0.01,
        handle_signals=False,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
    )
    reports: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reports.append(context))
    try:
        await pool.enqueue_job("freeze_redis", _job_id="abandoned", _queue_name="q:abandon")
        running = asyncio.create_task(worker.async_run())
        await asyncio.wait_for(frozen.wait(), timeout=10)
        deadline = time.monotonic() + 5
        while worker.job_tasks:  # the job is done; its run_job task now waits on the shielded write
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        in_flight = list(worker.tasks.values())
        assert in_flight
        assert not any(task.done() for task in in_flight)
        for task in [*in_flight, running]:
            task.cancel()
        await asyncio.gather(*in_flight, running, return_exceptions=True)

        process.kill()  # the frozen server dies: the waiting write fails with a ConnectionError
        process.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any("finish_job" in repr(task.get_coro()) for task in asyncio.all_tasks()):
            assert time.monotonic() < deadline, "the abandoned write never ended"
            await asyncio.sleep(0.01)
        del in_flight, running
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
        await pool.close(close_connection_pool=True)
    return reports


@pytest.mark.parametrize(("worker_class", "expected"), [(Worker, 1), (SupervisedWorker, 0)])
async def test_an_abandoned_result_write_that_fails_is_not_reported_as_lost(
    own_redis: RedisServer, worker_class: type[Worker], expected: int
) -> None:
    reports = await _abandon_a_result_write(worker_class, own_redis)

    lost = [r for r in reports if r.get("message") == "Task exception was never retrieved"]
    assert len(lost) == expected, reports
    if lost:
        assert "finish_job" in repr(lost[0]["future"])
