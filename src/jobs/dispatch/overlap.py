"""Overlapping a round trip with the CPU work that does not depend on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def while_waiting(io: Awaitable[T], work: Callable[[], R]) -> tuple[T, R]:
    """Run `work` (CPU) while `io` waits for its server, and return both results: dispatch encodes its
    jobs while PostgreSQL updates the journeys, and builds its result while Redis enqueues the jobs.

    `io` is started first and always awaited, also when `work` fails or the task is cancelled, so a
    connection is never released with a statement in flight."""
    pending = asyncio.ensure_future(io)
    try:
        await asyncio.sleep(0)  # lets `io` send its statement; a cancellation here still awaits it
        done = work()
    except BaseException:
        await asyncio.gather(pending, return_exceptions=True)
        raise
    return await pending, done
