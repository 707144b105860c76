"""Configuration from the environment and `.env`. Read in entry points only, through `get_config()`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from src.names import Function
from src.redis_io.connection import parse_redis_url

# Each job's timeout (docs/contract.md §1). arq fails a job for good when it fires, so a job's dependency
# calls must give up well inside it (src/runtime/budget.py).
JOB_TIMEOUT_S: dict[Function, float] = {
    Function.DISPATCH: 30.0,
    Function.ROUTE: 5.0,
    Function.ALLOCATE_PHONE: 3.0,
    Function.SELECT_CHANNEL: 2.0,
}
# A connect or Redis command timeout may take at most this share of the shortest job timeout: it must fire
# inside every job's budget (src/runtime/budget.py), with room left for a retry's bookkeeping.
DEPENDENCY_TIMEOUT_SHARE = 0.5
# A WAIT for replicas blocks at most this share of REDIS_SOCKET_TIMEOUT_S.
REPLICA_ACK_TIMEOUT_SHARE = 0.5


# The default of IDLE_POLL_S (Config.idle_poll_s), also WakeOnEnqueue's own.
DEFAULT_IDLE_POLL_S = 0.5


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Connections. DATABASE_URL takes postgresql:// or postgresql+asyncpg:// (normalised to asyncpg);
    # REDIS_URL takes redis://, rediss:// (TLS), a /db path, and redis+sentinel://
    # (src/redis_io/connection.py).
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/cerniq"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The jobs' asyncpg pool, per process, opened as needed: a per-lead job holds a connection for one or
    # two statements and a dispatch for its transaction, so a few connections serve hundreds of jobs a second.
    db_pool_size: int = Field(default=20, ge=1, le=500)
    # Opening a PostgreSQL connection; reading a Redis reply, connecting to Redis, waiting for a pooled Redis
    # connection. At most half the shortest job timeout (select_channel's 2 s): a dependency that hangs
    # then fails a job's try, which is retried, before arq's job timeout fails the job for good. A job's
    # statements and its wait for a PostgreSQL connection are bounded by the job's own budget instead.
    db_connect_timeout_s: float = Field(default=1.0, gt=0)
    redis_max_connections: int = Field(default=200, ge=8)
    redis_socket_timeout_s: float = Field(default=1.0, gt=0)
    # Replicas that must hold a write before the service relies on it (src/redis_io/replicas.py): 0 with a
    # lone Redis, 1 with Sentinel and replicas, so that a failover loses no acknowledged reservation or
    # enqueue. Each WAIT blocks at most half of REDIS_SOCKET_TIMEOUT_S; fewer acks is a transient fault.
    redis_min_replica_acks: int = Field(default=0, ge=0, le=16)

    # Logging: text for people, json for log shippers (one object per line).
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Worker loop. arq's defaults (0.5 s poll, 1 h health) are too slow for this service.
    poll_delay_s: float = Field(default=0.05, gt=0, le=5)
    # An idle queue worker waits for an enqueuer's wake-up message this long at most (src/runtime/wakeup.py).
    idle_poll_s: float = Field(default=DEFAULT_IDLE_POLL_S, gt=0, le=5)
    health_check_interval_s: int = Field(default=60, ge=1)
    # SIGTERM: stop taking jobs, let in-flight jobs finish for this long, then cancel what is left
    # (cancelled jobs stay queued and run again elsewhere).
    shutdown_grace_s: float = Field(default=25.0, ge=0)
    # How long job results stay readable in Redis (and block re-use of the same job id). An hour, arq's
    # own default: a dispatch result explains every lead of its batch (about 20 KB at batch 100, every
    # 5 minutes per tenant), and a day of them would cost Redis more memory than it is worth.
    keep_result_s: int = Field(default=3600, ge=60)

    # Concurrency per queue (docs/contract.md §1).
    dispatch_concurrency: int = Field(default=20, ge=1)
    router_concurrency: int = Field(default=50, ge=1)
    allocator_concurrency: int = Field(default=50, ge=1)
    selector_concurrency: int = Field(default=50, ge=1)

    # Transient faults (PostgreSQL or Redis unreachable): arq Retry with exponential backoff.
    retry_max_tries: int = Field(default=5, ge=1, le=50)
    retry_backoff_base_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)

    # Dispatch.
    dispatch_cron_enabled: bool = True
    # A dispatched lead waits this long, and at least until its tenant's next local day begins whatever
    # the value (src/domain/dispatch.py next_actions): one message per step per day.
    redispatch_after_s: int = Field(default=86_400, ge=60)
    no_channel_recheck_s: int = Field(default=21_600, ge=60)
    # The "ALL" fan-out puts tenants together in one dispatch job, as many as this many leads allow at the
    # job's batch size (20 tenants at the cron's 100): a small tenant's own job costs a dozen round trips
    # for a handful of leads (src/jobs/dispatch/group.py). At or below the batch size, one job per tenant.
    dispatch_group_leads: int = Field(default=2000, ge=1)
    # An outbox row whose dispatch job may still be running (its arq in-progress key exists) is relayed by
    # another dispatch once this old, by PostgreSQL's clock; a dead job's row goes at once (outbox.py).
    outbox_relay_grace_s: float = Field(default=60.0, ge=0)
    quota_key_ttl_s: int = Field(default=259_200, ge=172_800)
    # The evidence of every message (outreach_messages) is kept this many days (three years, a leap day
    # included), then deleted by the "ALL" fan-out (the cron's, every 5 minutes), at most
    # MESSAGE_RETENTION_BATCH rows per tick, oldest first.
    message_retention_days: int = Field(default=1096, ge=1)
    message_retention_batch: int = Field(default=10_000, ge=1, le=1_000_000)
    # route: the largest `payload` accepted, in bytes of its JSON encoding. The payload is copied into the
    # output queue and into arq's stored result of the router job, so a big one costs Redis memory twice.
    max_payload_bytes: int = Field(default=65_536, ge=1_024, le=16_777_216)

    # Prometheus metrics on this port; 0 turns the endpoint off.
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # Test-only fault injection: dispatch sleeps this long at the named step (src/runtime/chaos.py), so that a
    # crash test's SIGKILL lands between two writes. Empty (the default) turns it off.
    chaos_pause_at: Literal["", "after_reserve", "after_commit", "after_enqueue"] = ""
    chaos_pause_s: float = Field(default=0.0, ge=0)
    # Test-only: the service's clock runs this many seconds ahead of the host's (src/runtime/clock.py), so
    # that a test can run a worker process on a holiday or at a DST change. 0 (the default) in production.
    clock_shift_s: float = 0.0

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
            raise ValueError("DATABASE_URL must start with postgresql:// or postgresql+asyncpg://")
        return sqlalchemy_url(value)

    @field_validator("db_connect_timeout_s", "redis_socket_timeout_s")
    @classmethod
    def _inside_every_job_timeout(cls, value: float) -> float:
        function, shortest = min(JOB_TIMEOUT_S.items(), key=lambda item: item[1])
        limit = DEPENDENCY_TIMEOUT_SHARE * shortest
        if value > limit:
            raise ValueError(
                f"{value:g}s is more than {limit:g}s, half the shortest job timeout ({function}, "
                f"{shortest:g}s): a hung dependency must fail a job's try, which is retried, before the "
                "job's own timeout fails the job for good"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_target(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @property
    def replica_ack_timeout_s(self) -> float:
        """How long a WAIT for replicas blocks: inside the socket timeout, so Redis answers it in time."""
        return REPLICA_ACK_TIMEOUT_SHARE * self.redis_socket_timeout_s

    @property
    def database_url_sync_scheme(self) -> str:
        """The same database as a plain postgresql:// URL: asyncpg's, psql's and other libpq tools'."""
        return libpq_url(self.database_url)


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq and asyncpg take it: postgresql://."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql")) if parts.scheme.startswith("postgres") else url


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy takes it, on the asyncpg driver: postgresql+asyncpg://."""
    parts = urlsplit(url)
    return (
        urlunsplit(parts._replace(scheme="postgresql+asyncpg"))
        if parts.scheme.startswith("postgres")
        else url
    )


@lru_cache(maxsize=1)
def get_config() -> Config:
    return Config()
