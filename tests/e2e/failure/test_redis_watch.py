"""The worker says when Redis stops answering, whether it hangs or drops, when it answers again, and when
it comes back without its data: each once."""

from __future__ import annotations

import asyncio
import re

import pytest
from loguru import logger
from redis.asyncio import Redis

from src.names import REDIS_MARKER_KEY
from src.runtime.redis_watch import RedisWatch
from tests.failure.test_outages import lines, wait_for_line
from tests.servers import RedisServer
from tests.workers import WorkerProcess

HANG_S = 8


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_hang_a_drop_and_a_loss_of_data_are_each_said_once(own_redis: RedisServer) -> None:
    own = Redis.from_url(own_redis.url)
    worker = WorkerProcess("Settings", REDIS_URL=own_redis.url)
    async with worker:
        await worker.wait_healthy(own)
        await asyncio.sleep(1.5)  # the watch has seen the marker
        own_redis.freeze()
        await asyncio.sleep(HANG_S)
        own_redis.thaw()
        await wait_for_line(worker, "Redis reachable again", timeout=20)

        # Restarted without its append-only file: up again, and empty.
        own_redis.stop()
        own_redis.wipe()
        await asyncio.sleep(2)
        own_redis.start()
        await wait_for_line(worker, "Redis has lost its data", timeout=20)
        await worker.wait_healthy(own)  # its queue workers restarted on the empty Redis
        assert await own.exists(REDIS_MARKER_KEY), "the marker is set again, to see the next loss"
        output = worker.output()
    await own.aclose()

    hang, drop = re.findall(r"Redis unreachable \((\w+)", output)
    assert (hang, drop) == ("TimeoutError", "ConnectionError"), output
    assert lines(output, "Redis unreachable") == 2, output
    assert lines(output, "Redis reachable again") == 2, output
    [lost] = re.findall(r"^.*Redis has lost its data.*$", output, flags=re.MULTILINE)
    assert "| ERROR" in lost
    for what in ("queued jobs", "quota counters and reservations", "Troubleshooting"):
        assert what in lost, lost
    noise = re.findall(r"^.*\| (?:WARNING|ERROR|CRITICAL) +\|.*$", output, flags=re.MULTILINE)
    assert len(noise) == 5, "\n".join(noise)


async def test_the_watch_reports_a_lost_marker_once_and_sets_it_again(redis: Redis) -> None:
    said: list[str] = []
    sink = logger.add(lambda m: said.append(f"{m.record['level'].name} {m.record['message']}"), level="INFO")
    watch = RedisWatch(redis, timeout_s=1.0, on_back=lambda: 0)
    other = RedisWatch(redis, timeout_s=1.0, on_back=lambda: 0)  # a second worker process
    try:
        assert await watch.probe()
        assert await other.probe()
        await watch.probe()
        assert said == []  # the first sight of the marker is no loss
        await redis.flushdb()
        assert await watch.probe()
        assert await watch.probe()
        assert await other.probe()  # finds the marker the first one set again
    finally:
        logger.remove(sink)

    assert [line.split(" ", 1)[0] for line in said] == ["ERROR", "ERROR"], said
    assert "is gone" in said[0]
    assert "is another one" in said[1]
