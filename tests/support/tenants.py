"""Tenant settings that tests and benchmarks ask for by name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from types import MappingProxyType
from typing import Any

# Open all day every day, holidays not skipped: a dispatch decides on its leads whatever the instant. For
# every test that is not about the sending window (`factory.tenant(**ALWAYS_OPEN)`).
ALWAYS_OPEN: Mapping[str, Any] = MappingProxyType(
    {
        "send_window_start": time(0),
        "send_window_end": time(0),
        "send_days": [1, 2, 3, 4, 5, 6, 7],
        "skip_public_holidays": False,
    }
)
