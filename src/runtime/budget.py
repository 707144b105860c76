"""Each job's time budget: a dependency that hangs fails the job's try, never the job.

arq treats its own job timeout as a permanent failure (a bare TimeoutError, not retried). So every call a job
makes to PostgreSQL or Redis must give up well inside that timeout, as a transient fault the job wrapper
retries (src/jobs/base.py). The wrapper opens a deadline at BUDGET_SHARE of the job's timeout (`JobDeadline`):
- every PostgreSQL call of the job is bounded by what is left of it (`JobPool`): acquiring a connection,
  connecting, each statement, the ROLLBACK after a failure;
- a Redis command is bounded by REDIS_SOCKET_TIMEOUT_S, which Config keeps at most half the shortest job
  timeout, so it fires inside every budget;
- whatever the job still awaits when the deadline passes is cancelled, and the try ends in
  `DeadlineExceeded`, whose chain names the dependency it was waiting on (src/runtime/faults.py).
The rest of the timeout is left for unwinding: a connection whose statement was cut gets RELEASE_S to
acknowledge the cancel, then it is closed.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import asyncpg

from src.config import JOB_TIMEOUT_S
from src.names import Function

BUDGET_SHARE = 0.75
RELEASE_S = 0.25

_deadline: ContextVar[float | None] = ContextVar("job_deadline", default=None)


class DeadlineExceeded(TimeoutError):
    """A job try used up its budget. Transient: it is retried, and its cause (`__cause__`) shows what the
    job was waiting on when the deadline passed."""


def budget_s(function: Function) -> float:
    return JOB_TIMEOUT_S[function] * BUDGET_SHARE


_BUDGET_S = {function: budget_s(function) for function in Function}


def bounded(timeout: float | None) -> float | None:
    """`timeout`, shortened to what is left of the current job's budget; unchanged outside a job."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - asyncio.get_running_loop().time()
    return left if timeout is None else min(timeout, left)


class JobDeadline:
    """`async with JobDeadline(function):` runs a job try under its budget.

    asyncio.timeout's logic, without its state machine (it runs once per job): at the deadline the task
    is cancelled, and the CancelledError becomes DeadlineExceeded unless someone else (arq's timeout, a
    shutdown) asked for a cancellation too."""

    __slots__ = ("_cancelling", "_expired", "_task", "_timer", "_token", "_when", "budget_s", "function")

    def __init__(self, function: Function) -> None:
        self.function = function
        self.budget_s = _BUDGET_S[function]
        self._when = 0.0
        self._expired = False

    def passed(self) -> bool:
        """True once the deadline is reached: a cancellation that arrives now comes from arq's own
        timeout (or a shutdown) while the try unwinds, and the try is retried like any other."""
        return self._when > 0 and asyncio.get_running_loop().time() >= self._when

    def exceeded(self) -> DeadlineExceeded:
        """The error of a try that ran out of time; raise it from what the try was waiting on."""
        timeout = JOB_TIMEOUT_S[self.function]
        return DeadlineExceeded(
            f"{self.function} used up its {self.budget_s:.2f}s budget (of its {timeout:.0f}s job timeout)"
        )

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aenter__(self) -> JobDeadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task, self._cancelling = task, task.cancelling()
        self._when = loop.time() + self.budget_s
        self._timer = loop.call_at(self._when, self._expire)
        self._token: Token[float | None] = _deadline.set(self._when)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _deadline.reset(self._token)
        if not self._expired:
            return
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise self.exceeded() from exc
        if isinstance(exc, TimeoutError):
            # The cancellation was replaced while unwinding: a ROLLBACK past the deadline fails at once.
            raise self.exceeded() from exc


class BudgetedConnection(asyncpg.Connection):  # type: ignore[misc]
    """Every statement bounded by the job's budget. Past the deadline a statement fails at once, without
    a round trip: the ROLLBACK of a cut transaction then closes the connection instead of waiting on a
    server that does not answer."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await super().execute(query, *args, timeout=bounded(timeout))

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> Any:
        return await super().executemany(command, args, timeout=bounded(timeout))

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return await super().fetch(query, *args, timeout=bounded(timeout), **kwargs)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return await super().fetchrow(query, *args, timeout=bounded(timeout), **kwargs)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return await super().fetchval(query, *args, timeout=bounded(timeout), **kwargs)


class JobPool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's pool, on BudgetedConnections: waiting for a connection (and opening one) is bounded by
    the job's budget, and a release waits at most RELEASE_S for a cut statement's cancel."""

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=bounded(timeout))

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        await super().release(connection, timeout=RELEASE_S if timeout is None else timeout)
