"""Running the ops tool and the demo script as an operator would: a real process, its exit code and output.

They run on the host's clock, not at TEST_NOW: the ops tool reads the time itself and ignores CLOCK_SHIFT_S,
so a test of it compares with the host's clock (and the demo's worker gets no shift either)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import orjson

from tests.support.services import ROOT, service_env


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return orjson.loads(self.out)


async def run(*command: str, timeout: float = 60.0, **env: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=service_env(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def cli(*args: str, **env: str) -> Run:
    """`python -m src.ops ARGS` against the test services (override DATABASE_URL / REDIS_URL in env)."""
    return await run(sys.executable, "-m", "src.ops", *args, **env)
