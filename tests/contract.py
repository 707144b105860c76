"""Job results are built as plain JSON dicts on the hot paths; they must be exactly the contract model's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def checked(model: type[BaseModel], result: dict[str, Any]) -> dict[str, Any]:
    """`result`, after asserting it is what `model` would write: every field, same names, same values."""
    assert model.model_validate(result).model_dump(mode="json", by_alias=True) == result
    return result
