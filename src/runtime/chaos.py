"""A pause at a named step of dispatch, enabled only by the CHAOS_PAUSE_AT setting.

The crash tests set it on a worker subprocess, so that their SIGKILL lands between two writes instead of
wherever the scheduler happens to be. Unset (the default), `pause` returns at once.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from src.config import Config


async def pause(settings: Config, step: str) -> None:
    if settings.chaos_pause_at == step and settings.chaos_pause_s > 0:
        logger.warning("chaos: pausing {:.1f}s {}", settings.chaos_pause_s, step.replace("_", " "))
        await asyncio.sleep(settings.chaos_pause_s)
