"""Worker processes: `arq src.worker.<Settings>` for the end-to-end tests, any worker program for the
benchmarks, each in a subprocess of its own session with its whole output kept in a file."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis

from src.names import ALL_QUEUES_HEALTH_KEY, Queue, health_key
from tests.support.services import ROOT

# What a test's worker runs with unless the test says otherwise. The cron is off: a tick landing
# mid-test would dispatch its leads.
TEST_WORKER_ENV = {"LOG_LEVEL": "INFO", "HEALTH_CHECK_INTERVAL_S": "1", "DISPATCH_CRON_ENABLED": "false"}

_QUEUE_OF_SETTINGS = {
    "DispatchSettings": Queue.DISPATCH,
    "RouterSettings": Queue.ROUTER,
    "AllocatorSettings": Queue.ALLOCATOR,
    "SelectorSettings": Queue.SELECTOR,
}


def arq_command(settings: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "arq", f"src.worker.{settings}", *args]


def settings_health_key(settings: str) -> str:
    """The key a process of `src.worker.<settings>` keeps alive while it serves its queues."""
    return ALL_QUEUES_HEALTH_KEY if settings == "Settings" else health_key(_QUEUE_OF_SETTINGS[settings])


class WorkerProcess:
    """One worker process; its combined stdout and stderr are kept in a file for assertions."""

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str], health_key: str | None = None):
        self.command = list(command)
        self.env = dict(env)
        self.health_key = health_key
        self.log_path = Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() of the last start

    @classmethod
    def arq(cls, settings: str = "Settings", *, env: Mapping[str, str]) -> WorkerProcess:
        """`arq src.worker.<settings>`, healthy once its health key is in Redis."""
        return cls(arq_command(settings), env=env, health_key=settings_health_key(settings))

    def start(self) -> WorkerProcess:
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def healthy(self, redis: Redis) -> bool:
        """Whether the worker's health key is there; raises when the process has exited."""
        assert self.process is not None
        assert self.health_key is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
        return bool(await redis.exists(self.health_key))

    async def wait_healthy(self, redis: Redis, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.healthy(redis):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker not healthy after {timeout}s:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    async def wait_exit(self, timeout: float = 60.0, poll_s: float = 0.05) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker still running after {timeout}s:\n{self.output()}")
            await asyncio.sleep(poll_s)
        return self.process.returncode

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)

    async def stop(self) -> None:
        """SIGTERM, a SIGKILL if it has not exited after 30 s, and the log file removed."""
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                await self.wait_exit(timeout=30)
            except AssertionError:
                self.kill()
        self.close()

    def close(self) -> None:
        """SIGKILL if still running, and the log file removed."""
        self.kill()
        self.log_path.unlink(missing_ok=True)

    async def __aenter__(self) -> WorkerProcess:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def lines(output: str, pattern: str) -> int:
    """How many times the regular expression `pattern` matches a worker's output."""
    return len(re.findall(pattern, output))


async def wait_for_line(worker: WorkerProcess, pattern: str, timeout: float = 20.0) -> None:
    """Until the worker has logged a line matching `pattern` (a regular expression)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, worker.output()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not logged within {timeout}s:\n{worker.output()}")
        await asyncio.sleep(0.1)


class Workers:
    """The `arq src.worker.<Settings>` processes of one test, all on the test services and, through the
    CLOCK_SHIFT_S in `env`, on one clock (tests/conftest.py's `workers` fixture says which)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._made: list[WorkerProcess] = []

    def new(self, settings: str = "Settings", **env: str) -> WorkerProcess:
        """A worker process, not started yet: `.start()` it, or `async with` it."""
        worker = WorkerProcess.arq(settings, env={**self.env, **TEST_WORKER_ENV, **env})
        self._made.append(worker)
        return worker

    def check(self, settings: str) -> subprocess.CompletedProcess[str]:
        """`arq src.worker.<settings> --check`: exit code 0 while its queue workers are healthy."""
        return subprocess.run(
            arq_command(settings, "--check"),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self) -> None:
        """Kills what a test left running and removes the logs."""
        for worker in self._made:
            worker.close()
