"""The jobs' pool (`JobPool`, src/runtime/budget.py) shares and recycles its connections safely: a task
waiting for a connection gets the next one released, a transaction left open is rolled back, a cut
statement's cancel is waited for, an expired or closed connection is replaced.

The jobs' pool releases without a reset query (`src.runtime.deps._keep_session`): these are the
guarantees that choice relies on."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from src.runtime.budget import JobPool
from tests.support.services import make_settings


async def warm(pool: JobPool) -> int:
    """Open a connection and leave it idle in the pool; its server pid."""
    async with pool.acquire() as conn:
        pid: int = conn.get_server_pid()
    return pid


async def test_a_job_that_releases_and_acquires_again_does_not_pass_over_a_waiting_task(
    pool: JobPool,
) -> None:
    """A dispatch releases the outbox relay's connection and acquires the next one without awaiting in
    between: it must queue behind a task already waiting, or a burst of dispatches starves the others."""
    held = [await pool.acquire(timeout=5), await pool.acquire(timeout=5)]
    order: list[str] = []

    async def wait_for_one() -> None:
        async with pool.acquire(timeout=5) as conn:
            order.append("waiting task")
            await conn.fetchval("SELECT 1")

    async def release_and_acquire_again() -> None:
        await pool.release(held.pop())
        async with pool.acquire(timeout=5) as conn:
            order.append("releasing job")
            await conn.fetchval("SELECT 1")

    waiting = asyncio.create_task(wait_for_one())
    try:
        await asyncio.sleep(0.05)
        assert not waiting.done(), "both connections are held: the task must wait"
        await asyncio.wait_for(asyncio.gather(waiting, release_and_acquire_again()), 5)
    finally:
        await pool.release(held.pop())

    # asyncpg's release lets the waiting task run before the releasing job goes on. A release that gave
    # the connection back without awaiting would let the job take it again, burst after burst: a Redis
    # outage test saw a select_channel job wait out its whole budget that way.
    assert order == ["waiting task", "releasing job"]


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
