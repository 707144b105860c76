"""The dispatch queue's share of the jobs' pool (`PoolShare`, src/runtime/pool_share.py): at most its limit
of connections at once, each place given back whatever becomes of the connection, and a wait for a place
cut by the job's budget reported as a PostgreSQL fault."""

from __future__ import annotations

import asyncio

import pytest

from src.names import Function, Queue
from src.runtime.budget import DeadlineExceeded, JobDeadline, JobPool
from src.runtime.deps import Deps, for_queues
from src.runtime.faults import Dependency, transient_fault
from src.runtime.pool_share import PoolShare, dispatch_share


@pytest.mark.parametrize(("pool_size", "share"), [(1, 1), (2, 1), (3, 2), (4, 3), (8, 6), (20, 15)])
def test_dispatch_leaves_a_quarter_of_the_pool_and_at_least_one_connection(
    pool_size: int, share: int
) -> None:
    assert dispatch_share(pool_size) == share


def test_only_dispatch_gets_a_share_and_only_beside_other_queues(deps: Deps) -> None:
    alone = for_queues(deps, [Queue.DISPATCH])
    assert alone[Queue.DISPATCH] is deps

    together = for_queues(deps, list(Queue))
    shared = together[Queue.DISPATCH].pg
    assert isinstance(shared, PoolShare)
    assert (shared.pool, shared.limit) == (deps.pg, dispatch_share(deps.config.db_pool_size))
    assert all(together[queue] is deps for queue in Queue if queue is not Queue.DISPATCH)


async def test_a_share_holds_at_most_its_limit_while_the_pool_has_more(pool: JobPool) -> None:
    share = PoolShare(pool, 1)
    first = share.acquire()
    await first.__aenter__()
    second = share.acquire()
    waiting = asyncio.create_task(second.__aenter__())
    try:
        await asyncio.sleep(0.1)
        assert not waiting.done(), "a second holder got in past a share of 1"
        async with pool.acquire(timeout=1) as conn:  # the pool itself still has a connection
            assert await conn.fetchval("SELECT 1") == 1

        await first.__aexit__(None, None, None)
        conn = await asyncio.wait_for(waiting, 5)
        assert await conn.fetchval("SELECT 2") == 2
    finally:
        waiting.cancel()
        await second.__aexit__(None, None, None)


async def test_a_place_comes_back_when_no_connection_could_be_had(pool: JobPool) -> None:
    share = PoolShare(pool, 1)
    held = [await pool.acquire(timeout=5) for _ in range(2)]
    try:
        with pytest.raises(asyncio.TimeoutError):
            async with share.acquire(timeout=0.1):
                pass
    finally:
        for conn in held:
            await pool.release(conn)
    async with share.acquire(timeout=5) as conn:
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_place_comes_back_when_the_job_fails_while_holding_it(pool: JobPool) -> None:
    share = PoolShare(pool, 1)

    async def fail_holding_it() -> None:
        async with share.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")
            raise LookupError("the job failed")

    with pytest.raises(LookupError):
        await fail_holding_it()
    async with share.acquire(timeout=1) as conn:
        assert await conn.fetchval("SELECT 1") == 1


async def wait_for_a_place(share: PoolShare) -> None:
    async with JobDeadline(Function.SELECT_CHANNEL), share.acquire():
        pass


async def test_a_wait_for_a_place_cut_by_the_budget_is_a_postgresql_fault(pool: JobPool) -> None:
    share = PoolShare(pool, 1)
    holder = share.acquire()
    await holder.__aenter__()
    try:
        with pytest.raises(DeadlineExceeded) as cut:
            await wait_for_a_place(share)
    finally:
        await holder.__aexit__(None, None, None)
    assert transient_fault(cut.value) is Dependency.POSTGRESQL
