"""A pause at a named step of dispatch, enabled only by the CHAOS_PAUSE_AT setting.

The crash tests set it on a worker subprocess, so that their SIGKILL lands between two writes instead of
wherever the scheduler happens to be. Unset (the default), `pause` returns at once.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from src.config import Config


async def pause(config: Config, step: str) -> None:
    if config.chaos_pause_at == step and config.chaos_pause_s > 0:
        logger.warning("chaos: pausing {:.1f}s {}", config.chaos_pause_s, step.replace("_", " "))
        await asyncio.sleep(config.chaos_pause_s)
