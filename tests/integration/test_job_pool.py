"""The jobs' pool (src/runtime/job_pool.py): an idle connection comes and goes without awaiting, and every
case that needs more than that still gets asyncpg's own handling: a task waiting for a connection gets it, a
transaction left open is rolled back, a cut statement's cancel is waited for, an expired or closed
connection is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest

from src.runtime.deps import create_job_pool
from src.runtime.job_pool import FAST_PATH, JobPool
from tests.support.services import make_settings


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[JobPool]:
    built = await create_job_pool(make_settings(db_pool_size=2))
    assert isinstance(built, JobPool)
    try:
        yield built
    finally:
        await asyncio.wait_for(built.close(), 10)


async def at_once(awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """Await `awaitable` in a task of its own: (whether its first step finished it, its value)."""
    task = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0)  # the loop runs the task's first step, then this test again
    finished = task.done()
    return finished, await task


async def warm(pool: JobPool) -> int:
    """Open a connection and leave it idle in the pool; its server pid."""
    async with pool.acquire() as conn:
        pid: int = conn.get_server_pid()
    return pid


def test_the_fast_path_is_on_with_the_locked_asyncpg() -> None:
    assert FAST_PATH, (
        f"asyncpg {asyncpg.__version__}: check src/runtime/job_pool.py's fast path against this version's "
        "asyncpg/pool.py, then add it to CHECKED_ASYNCPG"
    )


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "asyncpg's path"])
async def test_an_idle_connection_is_acquired_and_released_without_awaiting(
    pool: JobPool, fast_path: bool
) -> None:
    pid = await warm(pool)
    pool.fast_path = fast_path

    acquired, conn = await at_once(pool.acquire(timeout=5))
    assert conn.get_server_pid() == pid
    assert await conn.fetchval("SELECT 41 + 1") == 42
    released, _ = await at_once(pool.release(conn))

    # asyncpg's own release suspends (a shielded task, a timeout), which is what the fast path saves. Its
    # acquire of an idle connection does not suspend either, but it opens a timeout and two coroutines.
    assert acquired
    assert released == fast_path
    assert await warm(pool) == pid


async def test_a_connection_released_at_once_wakes_a_task_waiting_for_one(pool: JobPool) -> None:
    held = [await pool.acquire(timeout=5), await pool.acquire(timeout=5)]

    async def take() -> int:
        async with pool.acquire(timeout=5) as conn:
            pid: int = conn.get_server_pid()
        return pid

    waiting = asyncio.create_task(take())
    try:
        await asyncio.sleep(0.05)
        assert not waiting.done(), "both connections are held: the task must wait"
        pid = held[0].get_server_pid()
        released, _ = await at_once(pool.release(held[0]))

        assert released
        assert await asyncio.wait_for(waiting, 2) == pid
    finally:
        await pool.release(held[1])


async def test_a_connection_released_inside_a_transaction_is_rolled_back_before_reuse(pool: JobPool) -> None:
    pid = await warm(pool)
    conn = await pool.acquire(timeout=5)
    await conn.execute("BEGIN")
    await conn.execute("SELECT set_config('cerniq.probe', 'set in the transaction', true)")
    assert conn.is_in_transaction()
    await pool.release(conn)

    async with pool.acquire(timeout=5) as again:
        assert again.get_server_pid() == pid
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT coalesce(current_setting('cerniq.probe', true), '')") == ""


async def test_a_connection_whose_statement_was_cut_is_usable_by_the_next_job(pool: JobPool) -> None:
    await warm(pool)
    conn = await pool.acquire(timeout=5)
    with pytest.raises(TimeoutError):
        await conn.fetchval("SELECT pg_sleep(5)", timeout=0.2)
    await pool.release(conn)

    for _ in range(3):  # whichever connection comes: none is still busy with the cut statement
        async with pool.acquire(timeout=5) as again:
            assert await again.fetchval("SELECT 7") == 7


async def test_expired_connections_are_replaced_not_handed_out(pool: JobPool) -> None:
    pid = await warm(pool)
    await pool.expire_connections()

    async with pool.acquire(timeout=5) as conn:
        assert conn.get_server_pid() != pid
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_connection_the_server_closed_is_not_handed_out(pool: JobPool) -> None:
    pid = await warm(pool)
    admin = await asyncpg.connect(make_settings().database_url_sync_scheme)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    for _ in range(100):  # the event loop reads the server's goodbye
        await asyncio.sleep(0.02)
        async with pool.acquire(timeout=5) as probe:
            if probe.get_server_pid() != pid:
                break
    async with pool.acquire(timeout=5) as conn:
        assert conn.get_server_pid() != pid
        assert await conn.fetchval("SELECT 1") == 1
