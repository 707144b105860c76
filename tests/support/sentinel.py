"""A Redis that really fails over: a primary, its replicas (`redis-server --replicaof`) and three Sentinels
with a quorum of 2, each on a loopback port of its own, torn down after the test.

`Replicated` is the primary and replicas alone (for WAIT without Sentinel); `SentinelTopology` adds the
sentinels, kills the primary, waits for the sentinels to promote a replica, and brings the killed server
back as a replica of the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from tests.support.servers import RedisServer, SentinelServer

MASTER_NAME = "cerniq"  # tests/support/servers.py's SentinelServer monitors the master under this name
# Persistence as compose.yaml runs Redis (append-only file, fsync every second), and a full sync that
# starts at once rather than after Redis's default 5 s wait for more replicas to share it.
OPTIONS = ("--appendfsync", "everysec", "--repl-diskless-sync-delay", "0")
# Short, so that a test fails a primary over in a few seconds, but not 1 s: a sentinel reconnects to a
# just promoted primary at most once a second (SENTINEL_PING_PERIOD), so at 1000 ms its first answer can
# come too late, the sentinels call the new primary down and fail over again, to the replica that has
# just rejoined, while the demoted one still takes writes (seen about once in ten runs, Redis 7.0.15).
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 5000
PROBE_KEY = "tests:replication-probe"


async def ask(port: int, *command: Any) -> Any:
    """One command to the server on `port`, on a connection of its own."""
    client = Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def replication(port: int) -> dict[str, Any]:
    """INFO replication of the server on `port`."""
    client = Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        info: dict[str, Any] = await client.info("replication")
        return info
    finally:
        await client.aclose()


async def acknowledging(port: int, timeout_ms: int) -> int:
    """How many replicas of the primary on `port` acknowledge a write of the harness within `timeout_ms`."""
    client = Redis(
        host="127.0.0.1", port=port, socket_timeout=1 + timeout_ms / 1000, socket_connect_timeout=1
    )
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(PROBE_KEY)
            pipe.execute_command("WAIT", 16, timeout_ms)
            _, acknowledged = await pipe.execute()
        return int(acknowledged)
    finally:
        await client.aclose()


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float, poll_s: float = 0.05
) -> float:
    """Wait until the coroutine function `condition` returns true (errors count as false); how long it
    took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            if await condition():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(poll_s)


class Replicated:
    """A primary and `replicas` replicas of it."""

    def __init__(self, replicas: int = 1) -> None:
        self.primary = RedisServer(*OPTIONS)
        self.replicas = [
            RedisServer(*OPTIONS, "--replicaof", "127.0.0.1", str(self.primary.port)) for _ in range(replicas)
        ]

    @property
    def nodes(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def url(self, db: int = 0) -> str:
        """The primary, plainly: redis://."""
        return f"redis://127.0.0.1:{self.primary.port}/{db}"

    async def start(self) -> None:
        for node in self.nodes:
            node.start()
        for replica in self.replicas:
            await self.wait_linked(replica, self.primary.port)

    async def wait_linked(self, replica: RedisServer, primary_port: int, timeout: float = 20) -> float:
        """Until `replica` replicates the server on `primary_port` and acknowledges its writes. After a
        diskless sync the primary streams nothing to a replica, and a WAIT times out, until that replica's
        first acknowledgement, up to a second after the sync is done."""

        async def linked() -> bool:
            info = await replication(replica.port)
            if info.get("master_port") != primary_port or info.get("master_link_status") != "up":
                return False
            primary = await replication(primary_port)
            online = [v for k, v in primary.items() if k.startswith("slave") and v["state"] == "online"]
            if replica.port not in {r["port"] for r in online}:
                return False
            return bool(await acknowledging(primary_port, timeout_ms=100) >= len(online))

        return await until(linked, f"replica {replica.port} of {primary_port}", timeout)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class SentinelTopology(Replicated):
    """`Replicated`, watched by three sentinels with a quorum of 2, which fail the primary over once it
    has not answered for DOWN_AFTER_MS."""

    def __init__(self, replicas: int = 1) -> None:
        super().__init__(replicas)
        settings = {"down-after-milliseconds": DOWN_AFTER_MS, "failover-timeout": FAILOVER_TIMEOUT_MS}
        primary = Replicated.url(self)
        self.sentinels = [SentinelServer(primary, quorum=2, settings=settings) for _ in range(3)]

    def url(self, db: int = 0) -> str:
        """Through the sentinels: redis+sentinel://, as the service takes it."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/{db}"

    async def start(self) -> None:
        await super().start()
        for sentinel in self.sentinels:
            sentinel.start()
        # Each sentinel must know the other two (a quorum and a majority to elect a leader) and every
        # replica, or a failover would not happen.
        for sentinel in self.sentinels:

            async def ready(port: int = sentinel.port) -> bool:
                raw = await ask(port, "SENTINEL", "MASTER", MASTER_NAME)
                state = dict(zip(raw[::2], raw[1::2], strict=True))
                return int(state[b"num-other-sentinels"]) == 2 and int(state[b"num-slaves"]) == len(
                    self.replicas
                )

            await until(ready, f"sentinel {sentinel.port} sees its peers and replicas", timeout=30)

    async def master_port(self) -> int:
        """The primary's port, as the first sentinel that answers says."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                _, port = await ask(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                return int(port)
        raise AssertionError("no sentinel answers")

    async def cut_off(self, replica: RedisServer) -> None:
        """From now on the primary's writes do not reach `replica`: it is frozen (SIGSTOP), so it cannot
        reconnect, and the primary drops its link (what was already sent to its socket still arrives).
        `replica.thaw()` ends it; if the primary is still there, the replica catches up (partial resync)."""
        replica.freeze()
        await ask(await self.master_port(), "CLIENT", "KILL", "TYPE", "replica")

    async def failovers(self) -> int:
        """How many failovers the sentinels have made (the highest configuration epoch among them)."""
        epochs = []
        for sentinel in self.sentinels:
            raw = await ask(sentinel.port, "SENTINEL", "MASTER", MASTER_NAME)
            epochs.append(int(dict(zip(raw[::2], raw[1::2], strict=True))[b"config-epoch"]))
        return max(epochs)

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    async def kill_primary(self) -> RedisServer:
        """SIGKILL the server the sentinels call primary; it is returned, dead."""
        primary = self.node(await self.master_port())
        primary.kill()
        return primary

    async def wait_promoted(self, old: RedisServer, timeout: float = 30) -> RedisServer:
        """Until every sentinel names another primary and that server says it is one."""

        async def promoted() -> bool:
            ports = {
                int((await ask(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME))[1])
                for s in self.sentinels
            }
            if len(ports) != 1 or old.port in ports:
                return False
            return bool((await replication(ports.pop()))["role"] == "master")

        await until(promoted, "a replica promoted", timeout)
        return self.node(await self.master_port())

    async def rejoin(self, node: RedisServer, timeout: float = 30) -> float:
        """Start the killed `node` again as a replica of the current primary, as a restarter that asks
        the sentinels first does (Sentinel itself would convert it about 10 s after it is back); how long
        until its sync was done."""
        primary_port = await self.master_port()
        node.options = [*OPTIONS, "--replicaof", "127.0.0.1", str(primary_port)]
        node.start()
        return await self.wait_linked(node, primary_port, timeout)

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        super().close()
