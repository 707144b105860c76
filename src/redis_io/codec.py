"""JSON for every queue: jobs, results and the jobs this service writes for the downstream senders.

Pickle is never used: anyone able to write to Redis could run code in a worker that unpickles.
A failed job's result is an exception object in arq; it is stored as a JSON object naming the error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import BaseModel

from src.errors import error_payload


def _default(value: Any) -> Any:
    if isinstance(value, BaseException):
        return error_payload(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # orjson stops at 64-bit integers; the standard library writes any JSON, for the rare payload
        # that needs it (the worker then refuses the out-of-range field by name).
        return json.dumps(value, default=_default, ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Numbers orjson refuses (1e400) are still JSON; parse them so validation can name the field.
        return json.loads(data)


def job_serializer(value: dict[str, Any]) -> bytes:
    return dumps(value)


def job_deserializer(data: bytes) -> dict[str, Any]:
    loaded = loads(data)
    if not isinstance(loaded, dict):
        raise ValueError("an arq job must be a JSON object")
    return loaded
