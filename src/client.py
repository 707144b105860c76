"""Typed enqueue helpers for ops scripts: the right queue, the JSON serializer and the job id are set here.

    import asyncio
    from src.client import OutreachClient

    async def main() -> None:
        async with OutreachClient.connect() as client:          # REDIS_URL, or pass redis_url=
            job = await client.select_channel(tenant_id=TENANT, lead_id=LEAD)
            result = await job.result(timeout=10)               # ChannelSelectionResult
            print(result.selected_channel)

    asyncio.run(main())

Input is validated before anything is enqueued: a bad field raises InvalidJobInput naming it. A job that
fails raises JobFailed with the stored error (code, message, fields).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from arq.connections import ArqRedis, create_pool
from arq.jobs import Job, JobStatus
from pydantic import BaseModel, ValidationError

from src.config import get_config
from src.contracts import (
    ChannelSelectionJobData,
    ChannelSelectionResult,
    DispatchJobData,
    DispatchResult,
    PhoneAllocationJobData,
    PhoneAllocationResult,
    RouterJobData,
    RouterResult,
    check_payload_size,
)
from src.errors import InvalidJobInput
from src.names import QUEUE_OF, Function
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.connection import arq_redis_settings, close_redis
from src.redis_io.job_writer import JobWriter, OutgoingJob
from src.redis_io.replicas import ReplicaAcks
from src.redis_io.result_watch import ResultWatch
from src.runtime.wakeup import wake_workers

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)


# Awaited results are read this often: one MGET a tick for all of a client's waiting callers
# (src/redis_io/result_watch.py), and a result is seen within 5 ms of being stored (arq's 0.5 s, or
# 50 ms, was most of a short job's latency as a caller sees it: bench/through_worker.py).
RESULT_POLL_S = 0.005


class JobFailed(RuntimeError):
    def __init__(self, job_id: str, error: dict[str, Any]) -> None:
        self.job_id = job_id
        self.error = error
        super().__init__(f"job {job_id} failed: {error.get('error')}: {error.get('message')}")


class ResultTimeout(TimeoutError):
    pass


@dataclass(frozen=True)
class JobState:
    job_id: str
    queue: str
    status: str  # deferred, queued, in_progress, complete, not_found
    function: str | None
    job_try: int | None
    success: bool | None
    result: Any


@dataclass(frozen=True)
class EnqueuedJob(Generic[R]):
    job_id: str
    queue: str
    function: Function
    created: bool  # False: a job with this id already existed, nothing was enqueued
    parse: Callable[[Any], R]
    _redis: ArqRedis
    _results: ResultWatch

    async def status(self) -> str:
        return (await Job(self.job_id, self._redis, _queue_name=self.queue).status()).value

    async def result(self, timeout: float = 30.0, poll_delay: float = RESULT_POLL_S) -> R:
        """Wait for the job's result; raises JobFailed when it failed, ResultTimeout when it takes longer.
        Callers awaiting at once share the client's reads (`ResultWatch`): one a `poll_delay`."""
        job = Job(self.job_id, self._redis, _queue_name=self.queue, _deserializer=job_deserializer)
        info = await job.result_info()
        if info is None:
            info = await self._results.wait(self.job_id, timeout=timeout, poll_delay=poll_delay)
        if info is None:
            raise ResultTimeout(f"job {self.job_id} has no result after {timeout:.1f}s")
        if info.success:
            return self.parse(info.result)
        error = (
            info.result if isinstance(info.result, dict) else {"error": "FAILED", "message": str(info.result)}
        )
        raise JobFailed(self.job_id, error)


class OutreachClient:
    def __init__(
        self, redis: ArqRedis, *, max_payload_bytes: int | None = None, min_replica_acks: int | None = None
    ) -> None:
        """`max_payload_bytes`: the largest route payload sent (default: MAX_PAYLOAD_BYTES).
        `min_replica_acks`: replicas that must hold a job before its enqueue returns (default:
        REDIS_MIN_REPLICA_ACKS, as for the workers' own enqueues)."""
        config = get_config()
        self.redis = redis
        self.max_payload_bytes = max_payload_bytes or config.max_payload_bytes
        # Jobs are written by the service's enqueue script, one call that checks the id and writes the
        # job, not by arq's enqueue_job: that one watches the job's key, and a connection lost during its
        # transaction reaches arq as a WatchError, which it reports as a duplicate (None). The caller was
        # told "already enqueued" of a job that was never written (tests/failure/test_client_enqueue.py).
        # Then the replicas are waited for, as for every write the service relies on (replicas.py): a
        # job a failover would lose is not reported as enqueued.
        self._writer = JobWriter(redis, acks=ReplicaAcks.configured(redis, config, min_acks=min_replica_acks))
        self.results = ResultWatch(redis, deserializer=job_deserializer)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        redis_url: str | None = None,
        *,
        max_payload_bytes: int | None = None,
        min_replica_acks: int | None = None,
    ) -> AsyncIterator[OutreachClient]:
        config = dataclasses.replace(arq_redis_settings(redis_url or get_config().redis_url), conn_retries=0)
        redis = await create_pool(config, job_serializer=job_serializer, job_deserializer=job_deserializer)
        client = None
        try:
            client = cls(redis, max_payload_bytes=max_payload_bytes, min_replica_acks=min_replica_acks)
            yield client
        finally:
            if client is not None:
                await client.results.close()
            await close_redis(redis)

    async def enqueue(
        self, function: Function, data: BaseModel, result_model: type[M], *, job_id: str | None = None
    ) -> EnqueuedJob[M]:
        """Enqueue validated input; the result is parsed into `result_model`."""
        return await self._enqueue(
            function, data.model_dump(mode="json", by_alias=True), result_model.model_validate, job_id
        )

    async def enqueue_raw(
        self, function: Function | str, payload: Any, *, job_id: str | None = None
    ) -> EnqueuedJob[dict[str, Any]]:
        """Enqueue a payload as it is, unvalidated (the worker still validates it); the result is a dict."""
        return await self._enqueue(Function(function), payload, _as_dict, job_id)

    async def _enqueue(
        self, function: Function, payload: Any, parse: Callable[[Any], R], job_id: str | None
    ) -> EnqueuedJob[R]:
        queue = QUEUE_OF[function].value
        job_id = job_id or f"{function.value}:{uuid4().hex}"
        outgoing = OutgoingJob(job_id, queue, function.value, payload)
        [created] = await self._writer.enqueue([outgoing], now_ms=int(time.time() * 1000))
        if created:
            await wake_workers(self.redis, queue)
        return EnqueuedJob(job_id, queue, function, created, parse, self.redis, self.results)

    async def dispatch(
        self,
        *,
        tenant_id: UUID | str,
        correlation_id: str | None = None,
        job_id: str | None = None,
        **fields: Any,
    ) -> EnqueuedJob[DispatchResult]:
        """fields: batch_size, channel_preference, priority_filter, sequence_filter, dry_run."""
        data = _build(
            DispatchJobData, tenant_id=tenant_id, correlation_id=correlation_id or _correlation(), **fields
        )
        return await self.enqueue(Function.DISPATCH, data, DispatchResult, job_id=job_id)

    async def route(
        self,
        *,
        lead_id: UUID | str,
        phone_id: UUID | str,
        message_type: str,
        payload: dict[str, Any],
        tenant_id: UUID | str | None = None,
        send_now: bool = False,
        correlation_id: str | None = None,
        job_id: str | None = None,
    ) -> EnqueuedJob[RouterResult]:
        """Without `tenant_id` the lead's own tenant; `send_now`: a reply, sent outside the window too."""
        data = _build(
            RouterJobData,
            tenant_id=tenant_id,
            lead_id=lead_id,
            phone_id=phone_id,
            message_type=message_type,
            payload=payload,
            correlation_id=correlation_id,
            send_now=send_now or None,
        )
        check_payload_size(data.payload, limit=self.max_payload_bytes)
        return await self.enqueue(Function.ROUTE, data, RouterResult, job_id=job_id)

    async def allocate_phone(
        self,
        *,
        tenant_id: UUID | str,
        lead_id: UUID | str,
        prefer_existing: bool = True,
        correlation_id: str | None = None,
        job_id: str | None = None,
    ) -> EnqueuedJob[PhoneAllocationResult]:
        data = _build(
            PhoneAllocationJobData,
            tenant_id=tenant_id,
            lead_id=lead_id,
            prefer_existing=prefer_existing,
            correlation_id=correlation_id,
        )
        return await self.enqueue(Function.ALLOCATE_PHONE, data, PhoneAllocationResult, job_id=job_id)

    async def select_channel(
        self,
        *,
        tenant_id: UUID | str,
        lead_id: UUID | str,
        preferred_channel: str = "AUTO",
        correlation_id: str | None = None,
        job_id: str | None = None,
    ) -> EnqueuedJob[ChannelSelectionResult]:
        data = _build(
            ChannelSelectionJobData,
            tenant_id=tenant_id,
            lead_id=lead_id,
            preferred_channel=preferred_channel,
            correlation_id=correlation_id,
        )
        return await self.enqueue(Function.SELECT_CHANNEL, data, ChannelSelectionResult, job_id=job_id)

    async def job_state(self, job_id: str, queue: str | None = None) -> JobState:
        """Status and result of any job of this service, found on its queue when `queue` is not given."""
        queues = [queue] if queue else [q.value for q in QUEUE_OF.values()]
        for name in queues:
            job = Job(job_id, self.redis, _queue_name=name, _deserializer=job_deserializer)
            status = await job.status()
            if status is JobStatus.not_found:
                continue
            info = await job.info()
            result = await job.result_info()
            return JobState(
                job_id=job_id,
                queue=result.queue_name if result else name,
                status=status.value,
                function=info.function if info else None,
                job_try=info.job_try if info else None,
                success=result.success if result else None,
                result=result.result if result else None,
            )
        return JobState(job_id, queue or "", JobStatus.not_found.value, None, None, None, None)


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value)


def _build(model: type[BaseModel], **fields: Any) -> Any:
    values = {key: value for key, value in fields.items() if value is not None}
    for key, value in values.items():
        if isinstance(value, UUID):
            values[key] = str(value)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidJobInput.from_validation(exc) from None


def _correlation() -> str:
    return f"ops-{uuid4().hex[:12]}"
