"""The supervisor's Redis watch on a real Redis, in process: a lost marker is said once and set again.
(A worker process's lines when its Redis hangs, drops or loses its data: tests/e2e/failure/test_redis_watch.py.)"""

from __future__ import annotations

from loguru import logger
from redis.asyncio import Redis

from src.runtime.redis_watch import RedisWatch


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
