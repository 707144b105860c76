"""Dispatch overlaps its journey UPDATE with encoding the jobs; the statement is always awaited."""

from __future__ import annotations

import asyncio

import pytest

from src.jobs.dispatch.overlap import while_waiting


async def _statement(finished: list[str]) -> str:
    await asyncio.sleep(0.05)
    finished.append("statement")
    return "UPDATE 3"


async def test_both_results_come_back() -> None:
    finished: list[str] = []
    assert await while_waiting(_statement(finished), lambda: 3) == ("UPDATE 3", 3)


async def test_a_failing_computation_still_waits_for_the_statement() -> None:
    finished: list[str] = []

    def fail() -> int:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        await while_waiting(_statement(finished), fail)
    assert finished == ["statement"]


async def test_a_cancellation_at_the_first_yield_still_waits_for_the_statement() -> None:
    """Cancelled at its first yield (a worker stopping), it must not leave the statement running on a
    connection that is about to be rolled back and released."""
    finished: list[str] = []
    running = asyncio.create_task(while_waiting(_statement(finished), lambda: 3))
    await asyncio.sleep(0)  # the task starts the statement and yields once
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert finished == ["statement"]
