"""The worker says when Redis stops answering, whether it hangs or drops, when it answers again, and when
it comes back without its data: each once."""

from __future__ import annotations

import asyncio
import re

import pytest
from redis.asyncio import Redis

from src.names import REDIS_MARKER_KEY
from tests.support.servers import RedisServer
from tests.support.workers import Workers, lines, wait_for_line

HANG_S = 8


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_hang_a_drop_and_a_loss_of_data_are_each_said_once(
    own_redis: RedisServer, workers: Workers
) -> None:
    own = Redis.from_url(own_redis.url)
    worker = workers.new("Settings", REDIS_URL=own_redis.url)
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
    assert len(noise) == 3, "\n".join(noise)  # the two "Redis unreachable" and the loss ("back" is INFO)
