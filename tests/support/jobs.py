"""Calling a job function in-process, as arq would, checking what it returns against its contract, and
reading what it queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from src.contracts import DispatchResult
from src.jobs.dispatch import dispatch
from src.runtime.clock import Clock
from src.runtime.deps import Deps, build_deps, close_deps
from tests.support.services import make_settings


def job_ctx(deps: Deps, job_id: str = "test-job", job_try: int = 1, queue: str = "test") -> dict[str, Any]:
    """The ctx arq passes to a job function."""
    return {"deps": deps, "job_id": job_id, "job_try": job_try, "queue": queue}


def checked(model: type[BaseModel], result: dict[str, Any]) -> dict[str, Any]:
    """`result`, after asserting it is what `model` would write: every field, same names, same values.

    Job results are built as plain JSON dicts on the hot paths; they must be exactly the contract model's.
    """
    expected = model.model_validate(result).model_dump(mode="json", by_alias=True)
    # As JSON with sorted keys: equal only when every value has the same JSON type (True is not 1).
    assert orjson.dumps(expected, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        result, option=orjson.OPT_SORT_KEYS
    )
    return result


async def run_dispatch(
    deps: Deps, tenant: UUID | str, job_id: str = "dispatch-1", job_try: int = 1, **extra: Any
) -> dict[str, Any]:
    """dispatch of `tenant` (or "ALL") as arq runs it, with the input fields in `extra`; its result checked."""
    payload = {"correlationId": "corr-1", "tenantId": str(tenant), **extra}
    return checked(DispatchResult, await dispatch(job_ctx(deps, job_id=job_id, job_try=job_try), payload))


async def queued(redis: Redis, queue: str) -> list[str]:
    """The ids of the jobs waiting in `queue`, the earliest due first."""
    return [member.decode() for member in await redis.zrange(queue, 0, -1)]


@asynccontextmanager
async def deps_with(clock: Clock, **settings: Any) -> AsyncIterator[Deps]:
    """The jobs' resources on the test services with other settings than the `deps` fixture's (use it
    beside that fixture, which empties the databases first)."""
    built = await build_deps(make_settings(**settings), clock=clock)
    try:
        yield built
    finally:
        await close_deps(built)


def follow_up(lead: UUID, phone: UUID) -> dict[str, Any]:
    """A route job's input: a follow-up to `lead` on `phone`, the lead's own tenant."""
    return {
        "leadId": str(lead),
        "phoneId": str(phone),
        "messageType": "FOLLOWUP",
        "payload": {"text": "Revin"},
    }
