"""Writes that must survive a failover: confirmed by replicas (WAIT) before the service relies on them.

Redis replicates asynchronously: a primary acknowledges a write before any replica has it, and a failover
promotes a replica without the primary's last writes. The quota ledger and the job writer call
`ReplicaAcks.confirm()` after each write the service relies on next (a reservation before the journeys
commit, an enqueue before its outbox row is deleted, a routed message before its router job succeeds), so
with REDIS_MIN_REPLICA_ACKS = N it goes on only once N replicas hold the write.

WAIT counts the writes of the connection it runs on, and a pooled client may have written on another
connection. So `confirm` writes a fence key first and waits for that: a replica's acknowledged offset
covers everything the primary did before the fence, which includes the caller's write and, as well, an
earlier try's write that the caller found and reused (a reservation of the same job id, a job already
enqueued) without writing anything itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from src.names import REPLICA_FENCE_KEY

if TYPE_CHECKING:
    from src.config import Config


class ReplicaAckTimeout(RedisError):
    """Fewer replicas than REDIS_MIN_REPLICA_ACKS acknowledged a write in time: a transient Redis fault
    (src/runtime/faults.py). The job retries; it never goes on as if the write would survive a failover."""


class ReplicaAcks:
    def __init__(self, redis: Redis, *, min_acks: int, timeout_s: float) -> None:
        """`timeout_s`: how long WAIT blocks, shorter than the client's socket timeout, so that Redis
        answers before the client gives up on it."""
        self._redis = redis
        self.min_acks = min_acks
        self._timeout_ms = max(1, round(timeout_s * 1000))

    @classmethod
    def configured(cls, redis: Redis, config: Config, *, min_acks: int | None = None) -> ReplicaAcks:
        """REDIS_MIN_REPLICA_ACKS replicas (or `min_acks`), waited for as long as the configuration allows."""
        wanted = config.redis_min_replica_acks if min_acks is None else min_acks
        return cls(redis, min_acks=wanted, timeout_s=config.replica_ack_timeout_s)

    async def confirm(self) -> None:
        """Return once `min_acks` replicas hold every write the primary made before this call; at once
        when no replica is required."""
        if not self.min_acks:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(REPLICA_FENCE_KEY)
            pipe.execute_command("WAIT", self.min_acks, self._timeout_ms)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) < self.min_acks:
            raise ReplicaAckTimeout(
                f"{acknowledged} of {self.min_acks} replicas acknowledged the write within "
                f"{self._timeout_ms} ms (REDIS_MIN_REPLICA_ACKS)"
            )
