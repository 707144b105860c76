"""Real servers a test owns: a Redis it can stop, freeze and empty, a Sentinel in front of the test
Redis, a TCP path to PostgreSQL it can cut or hang."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.net import free_port


class RedisServer:
    """A redis-server on its own port, persisting every write (AOF, fsync always) so that a stop and a
    start lose nothing, like a production Redis restart."""

    def __init__(self, *options: str) -> None:
        """`options`: more redis-server arguments, after the defaults (the later of two wins)."""
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-outage-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.options = list(options)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        """SHUTDOWN: the server flushes its append-only file and exits; clients see connection errors."""
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], capture_output=True, timeout=10)
        if self.process is not None:
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-write, without a word to its clients or replicas."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: a hung server. Connections stay open and new ones are accepted by the kernel, but
        nothing is answered until `thaw()`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def wipe(self) -> None:
        """Delete what a stopped server persisted: its next `start()` comes back empty, like a Redis
        restarted without persistence."""
        assert self.process is None or self.process.poll() is not None, "stop the server first"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelServer:
    """A Redis Sentinel on its own port that monitors the Redis of `redis_url` as master `cerniq`; `url`
    reaches the same database through it."""

    def __init__(self, redis_url: str, *, quorum: int = 1, settings: dict[str, int] | None = None) -> None:
        """`settings`: more `sentinel <name> cerniq <value>` lines (down-after-milliseconds, ...)."""
        self.port = free_port()
        self._target = urlsplit(redis_url)
        self.dir = Path(tempfile.mkdtemp(prefix="sentinel-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._quorum = quorum
        self._settings = settings or {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/cerniq/{self._target.path.strip('/') or 0}"

    def start(self) -> None:
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor cerniq {self._target.hostname} {self._target.port or 6379} {self._quorum}\n"
            + "".join(f"sentinel {name} cerniq {value}\n" for name, value in self._settings.items())
        )
        self.process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class CuttableProxy:
    """A TCP proxy in front of a real server. `cut()` drops every connection and refuses new ones, as if
    the server had become unreachable; `restore()` accepts again. `hang()` keeps every connection open and
    accepts new ones but forwards nothing, as if the server had frozen (SIGSTOP); `resume()` delivers what
    waited, in order, and forwards again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = asyncio.current_task()
        assert session is not None
        self._sessions.add(session)
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
            except OSError:
                self._writers.discard(writer)
                writer.close()
                return
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pipe(reader, upstream_writer),
                self._pipe(upstream_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._sessions.discard(session)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
