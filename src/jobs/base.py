"""What every job shares: parsing its one JSON argument, the log context, and mapping failures.

This is the one place where an exception becomes an arq decision: bad input and other `JobError`s fail
the job at once (arq does not retry a plain exception, so job_try stays 1); a transient fault becomes
`Retry` with exponential backoff until `retry_max_tries`, then a permanent failure that says so.

Each try runs within its budget (src/runtime/budget.py), well inside the job's arq timeout: a dependency
that hangs ends the try as a transient fault, never as arq's own timeout, which arq would not retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from arq.typing import WorkerCoroutine
from arq.worker import Retry
from loguru import logger
from pydantic import BaseModel, ValidationError

from src.errors import InvalidJobInput, JobError, TransientFaultsExhausted
from src.names import QUEUE_OF, Function
from src.results import Wire
from src.runtime import metrics
from src.runtime.budget import JobDeadline
from src.runtime.deps import Deps
from src.runtime.faults import Dependency, backoff_seconds, describe, transient_fault
from src.runtime.log import enrich_job
from src.runtime.outages import OUTAGES

In = TypeVar("In", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: str
    job_try: int
    queue: str


BOTH = frozenset({Dependency.POSTGRESQL, Dependency.REDIS})

# A job's body returns its result as src/results.py builds it.
JobBody = Callable[[Deps, In, JobInfo], Awaitable[Wire]]
JobCoroutine = WorkerCoroutine


def parse_input(model: type[In], args: tuple[Any, ...], kwargs: dict[str, Any]) -> In:
    if kwargs or len(args) != 1:
        raise InvalidJobInput(
            "invalid job input: a job takes exactly one positional argument, a JSON object "
            f"(got {len(args)} positional and {len(kwargs)} keyword arguments)",
            ["(job argument)"],
        )
    try:
        return model.model_validate(args[0])
    except ValidationError as exc:
        raise InvalidJobInput.from_validation(exc) from None


def job(
    function: Function, model: type[In], *, uses: frozenset[Dependency] = BOTH
) -> Callable[[JobBody[In]], JobCoroutine]:
    """Turn `body(deps, input, info) -> result` into an arq job function named `function`.
    `uses` names the dependencies the body talks to: its success ends an outage of those only."""
    queue = QUEUE_OF[function]

    def decorate(body: JobBody[In]) -> JobCoroutine:
        async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
            deps: Deps = ctx["deps"]
            info = JobInfo(job_id=ctx["job_id"], job_try=ctx["job_try"], queue=queue)
            started = time.monotonic()
            outcome = "failed"
            try:
                data = parse_input(model, args, kwargs)
                enrich_job(
                    tenantId=str(getattr(data, "tenant_id", "")),
                    correlationId=getattr(data, "correlation_id", None),
                )
                result = await _try(body, deps, data, info, JobDeadline(function))
                outcome = "ok"
                OUTAGES.succeeded(uses, started_at=started)
                return result
            except Retry:
                outcome = "retried"
                raise
            finally:
                metrics.observe_job(function.value, outcome, time.monotonic() - started)

        run.__qualname__ = run.__name__ = function.value
        return cast(WorkerCoroutine, run)

    return decorate


async def _try(body: JobBody[In], deps: Deps, data: In, info: JobInfo, deadline: JobDeadline) -> Wire:
    """One try of the body within its budget; a transient fault becomes Retry (or gives up)."""
    try:
        async with deadline:
            return await body(deps, data, info)
    except JobError:
        raise
    except Exception as exc:
        dependency = transient_fault(exc)
        if dependency is None:
            raise
        raise _retry_or_give_up(deps, info, dependency, exc) from exc
    except asyncio.CancelledError as cancelled:
        if not deadline.passed():
            raise
        # arq's own job timeout fired while the try unwound from its deadline. Left alone, arq would store
        # a bare TimeoutError and never retry: the try is retried like any other that ran out of time.
        exceeded = deadline.exceeded()
        exceeded.__cause__ = cancelled
        dependency = transient_fault(exceeded) or Dependency.NETWORK
        raise _retry_or_give_up(deps, info, dependency, exceeded) from None


def _retry_or_give_up(deps: Deps, info: JobInfo, dependency: Dependency, exc: Exception) -> Exception:
    config = deps.config
    fault = f"{dependency}: {describe(exc)}"
    if info.job_try >= config.retry_max_tries:
        logger.error(
            "transient fault on try {} of {}, giving up: {}", info.job_try, config.retry_max_tries, fault
        )
        return TransientFaultsExhausted(f"gave up after {info.job_try} tries; last fault: {fault}")
    delay = backoff_seconds(info.job_try, base=config.retry_backoff_base_s, cap=config.retry_backoff_max_s)
    OUTAGES.retrying(dependency, exc, job_try=info.job_try, max_tries=config.retry_max_tries, delay=delay)
    return Retry(defer=delay)
