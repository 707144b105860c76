"""Real worker processes for end-to-end and failure tests: `arq src.worker.<Settings>` in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis

from src.names import ALL_QUEUES_HEALTH_KEY, Queue, health_key
from tests.conftest import ROOT, service_env


class WorkerProcess:
    """One `arq src.worker.<settings>` process; its combined output is kept in a file for assertions."""

    def __init__(self, settings: str = "Settings", **env: str) -> None:
        self.settings = settings
        # The cron is off unless a test turns it on: a tick landing mid-test would dispatch its leads.
        defaults = {"LOG_LEVEL": "INFO", "HEALTH_CHECK_INTERVAL_S": "1", "DISPATCH_CRON_ENABLED": "false"}
        self.env = service_env(**{**defaults, **env})
        self.log_path = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() of the last start

    def start(self) -> WorkerProcess:
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "arq", f"src.worker.{self.settings}"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_healthy(self, redis: Redis, timeout: float = 20.0) -> None:
        key = ALL_QUEUES_HEALTH_KEY if self.settings == "Settings" else health_key(_queue_of(self.settings))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
            if await redis.exists(key):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker not healthy after {timeout}s:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    async def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker still running after {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    async def __aenter__(self) -> WorkerProcess:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                await self.wait_exit(timeout=30)
            except AssertionError:
                self.kill()
        self.log_path.unlink(missing_ok=True)


def _queue_of(settings: str) -> Queue:
    return {
        "DispatchSettings": Queue.DISPATCH,
        "RouterSettings": Queue.ROUTER,
        "AllocatorSettings": Queue.ALLOCATOR,
        "SelectorSettings": Queue.SELECTOR,
    }[settings]


def arq_check(settings: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arq", f"src.worker.{settings}", "--check"],
        cwd=ROOT,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
