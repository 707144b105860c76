"""Job results are built as plain JSON dicts on the hot paths; they must be exactly the contract model's."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def checked(model: type[BaseModel], result: dict[str, Any]) -> dict[str, Any]:
    """`result`, after asserting it is what `model` would write: every field, same names, same values."""
    expected = model.model_validate(result).model_dump(mode="json", by_alias=True)
    # As JSON with sorted keys: equal only when every value has the same JSON type (True is not 1).
    assert orjson.dumps(expected, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        result, option=orjson.OPT_SORT_KEYS
    )
    return result
