"""Calling a job function in-process, as arq would, and checking what it returns against its contract."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from src.runtime.deps import Deps


def job_ctx(deps: Deps, job_id: str = "test-job", job_try: int = 1, queue: str = "test") -> dict[str, Any]:
    """The ctx arq passes to a job function."""
    return {"deps": deps, "job_id": job_id, "job_try": job_try, "queue": queue}


def checked(model: type[BaseModel], result: dict[str, Any]) -> dict[str, Any]:
    """`result`, after asserting it is what `model` would write: every field, same names, same values.

    Job results are built as plain JSON dicts on the hot paths; they must be exactly the contract model's.
    """
    expected = model.model_validate(result).model_dump(mode="json", by_alias=True)
    # As JSON with sorted keys: equal only when every value has the same JSON type (True is not 1).
    assert orjson.dumps(expected, option=orjson.OPT_SORT_KEYS) == orjson.dumps(result, option=orjson.OPT_SORT_KEYS)
    return result
