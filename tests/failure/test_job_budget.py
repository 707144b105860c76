"""A job try ends inside its own timeout, as a retry, whatever it waits on: a statement that does not
return is cancelled on the server, and a try whose unwinding outlasts arq's own timeout is still retried
rather than stored as arq's bare TimeoutError. The job runs exactly as arq runs it: a task awaited with
`asyncio.wait_for(task, timeout)`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from arq.worker import Retry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.config import JOB_TIMEOUT_S
from src.contracts import ChannelSelectionJobData
from src.errors import TransientFaultsExhausted
from src.jobs.base import JobInfo, job
from src.names import Function
from src.results import Wire
from src.runtime.budget import budget_s
from src.runtime.deps import Deps
from tests.support.jobs import job_ctx

SELECT = Function.SELECT_CHANNEL
INPUT = {"tenantId": "8f0e1d5c-3c7a-4b8e-9a57-0a4f6c2b1e11", "leadId": "1b6f8e90-52c4-4c7e-8f0e-5c1d2b3a4f11"}
SLEEP_SQL = "SELECT pg_sleep(30) /* a statement that hangs */"


@job(SELECT, ChannelSelectionJobData)
async def hanging_statement(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> Wire:
    async with deps.pg.acquire() as conn, conn.transaction():
        await conn.execute(SLEEP_SQL)
    return {}


@job(SELECT, ChannelSelectionJobData)
async def slow_to_unwind(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> Wire:
    try:
        await asyncio.sleep(30)
    finally:
        await asyncio.sleep(JOB_TIMEOUT_S[SELECT])  # cleanup that outlasts the job's timeout
    return {}


async def as_arq_runs_it(function: Any, deps: Deps, job_try: int = 1) -> tuple[BaseException, float]:
    started = time.monotonic()
    task = asyncio.ensure_future(function(job_ctx(deps, job_try=job_try), INPUT))
    try:
        await asyncio.wait_for(task, JOB_TIMEOUT_S[SELECT])
    except (Exception, asyncio.CancelledError) as raised:
        return raised, time.monotonic() - started
    raise AssertionError("the job returned")


async def test_a_hanging_statement_is_cut_at_the_budget_and_cancelled_on_the_server(
    deps: Deps, engine: AsyncEngine
) -> None:
    error, took = await as_arq_runs_it(hanging_statement, deps)

    assert isinstance(error, Retry), repr(error)
    assert budget_s(SELECT) <= took < JOB_TIMEOUT_S[SELECT]
    assert "DeadlineExceeded" in repr(error.__cause__) or "TimeoutError" in repr(error.__cause__)
    async with engine.connect() as conn:
        for _ in range(50):
            running = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE query = :q AND state = 'active'"),
                {"q": SLEEP_SQL},
            )
            if running == 0:
                break
            await asyncio.sleep(0.1)
    assert running == 0, "the statement still runs on the server"


async def test_a_try_cut_by_arqs_own_timeout_is_retried_not_failed(deps: Deps) -> None:
    error, took = await as_arq_runs_it(slow_to_unwind, deps)

    assert isinstance(error, Retry), repr(error)
    assert took == pytest.approx(JOB_TIMEOUT_S[SELECT], abs=0.5)


async def test_the_last_try_fails_naming_the_dependency_it_waited_on(deps: Deps) -> None:
    error, _ = await as_arq_runs_it(hanging_statement, deps, job_try=deps.config.retry_max_tries)

    assert isinstance(error, TransientFaultsExhausted), repr(error)
    assert str(error).startswith("gave up after 5 tries; last fault: PostgreSQL: "), str(error)


async def test_a_cancellation_within_the_budget_stays_a_cancellation(deps: Deps) -> None:
    """A shutdown cancels in-flight jobs: arq puts them back in their queue, which needs CancelledError."""
    job = asyncio.ensure_future(hanging_statement(job_ctx(deps), INPUT))
    await asyncio.sleep(0.2)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # arq's shutdown cancels its run_job task, which is inside wait_for: still a cancellation, even when
    # the job's unwinding outlasts its budget
    run_job = asyncio.ensure_future(
        asyncio.wait_for(slow_to_unwind(job_ctx(deps), INPUT), JOB_TIMEOUT_S[SELECT])
    )
    await asyncio.sleep(0.2)
    run_job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_job
