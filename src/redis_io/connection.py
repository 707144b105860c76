"""REDIS_URL, one parser for every Redis client of the service (jobs, arq workers, ops client).

redis://[[user]:password@]host:port/db            plain
rediss://...                                       TLS
redis+sentinel://[[user]:password@]h1:26379,h2:26379/<master>/<db>
                                                   Redis Sentinel: the master is asked of the sentinels
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from arq.connections import RedisSettings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SCHEMES = ("redis", "rediss", "redis+sentinel")


@dataclass(frozen=True)
class RedisTarget:
    url: str
    hosts: tuple[tuple[str, int], ...]
    database: int
    username: str | None
    password: str | None
    ssl: bool
    sentinel_master: str | None  # set: the hosts are sentinels

    @property
    def is_sentinel(self) -> bool:
        return self.sentinel_master is not None


def parse_redis_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("REDIS_URL must start with redis://, rediss:// or redis+sentinel://")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme == "redis+sentinel":
        if not path:
            raise ValueError(
                "a Sentinel REDIS_URL names its master: redis+sentinel://host:26379/<master>/<db>"
            )
        master, db_part = path[0], path[1:]
        default_port = 26379
    else:
        master, db_part = None, path
        default_port = 6379
    if len(db_part) > 1 or (db_part and not db_part[0].isdigit()):
        raise ValueError("REDIS_URL path must be a database number, e.g. redis://host:6379/2")
    hosts = tuple(_host_port(item, default_port) for item in netloc.split(",") if item) or (
        ("localhost", default_port),
    )
    if master is None and len(hosts) > 1:
        raise ValueError("several hosts in REDIS_URL need redis+sentinel://")
    return RedisTarget(
        url=url,
        hosts=hosts,
        database=int(db_part[0]) if db_part else 0,
        username=username,
        password=password,
        ssl=parts.scheme == "rediss",
        sentinel_master=master,
    )


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    host, separator, port = item.rpartition(":")
    if not separator:
        return item, default_port
    if not port.isdigit():
        raise ValueError(f"bad port in REDIS_URL host {item!r}")
    return host, int(port)


def arq_redis_settings(url: str) -> RedisSettings:
    """The same target for arq's own pools (workers, enqueue client)."""
    target = parse_redis_url(url)
    if target.is_sentinel:
        return RedisSettings(
            host=list(target.hosts),
            sentinel=True,
            sentinel_master=target.sentinel_master or "",
            database=target.database,
            username=target.username,
            password=target.password,
        )
    host, port = target.hosts[0]
    return RedisSettings(
        host=host,
        port=port,
        database=target.database,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
    )


def create_redis_client(url: str, *, max_connections: int, timeout_s: float) -> Redis:
    """A Redis client with a bounded pool: callers wait for a connection instead of failing."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
        "username": target.username,
        "password": target.password,
        "db": target.database,
    }
    if target.is_sentinel:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
            **options,
        )
        master: Redis = sentinel.master_for(target.sentinel_master or "", max_connections=max_connections)
        return master
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s, **options)
    return Redis(connection_pool=pool)


async def close_redis(client: Redis) -> None:
    """Close a client and its pool; behind Sentinel, also the connections to the sentinels."""
    pool = client.connection_pool
    await client.aclose(close_connection_pool=True)
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose(close_connection_pool=True)
