"""The four job queues as arq Workers: each queue's functions, timeout and concurrency, and the options
every queue worker of this service runs with (JSON, fast polling, health keys, the log context)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from arq.cron import cron
from arq.worker import func

from src.config import JOB_TIMEOUT_S, Config
from src.jobs.allocate_phone import allocate_phone
from src.jobs.base import JobCoroutine
from src.jobs.dispatch import dispatch, dispatch_cron
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.names import DISPATCH_CRON_NAME, Function, Queue, health_key
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.connection import arq_redis_settings
from src.runtime.log import bind_job

# A cron job's result is kept for an hour: arq refuses to enqueue a job id whose result exists, so a
# worker with a skewed clock cannot run the same tick again after the in-progress key is gone (arq #196).
CRON_KEEP_RESULT_S = 3600


@dataclass(frozen=True)
class QueueSpec:
    functions: tuple[JobCoroutine, ...]
    timeout_s: float
    concurrency_setting: str
    with_cron: bool = False


_TIMEOUT = JOB_TIMEOUT_S
QUEUES: dict[Queue, QueueSpec] = {
    Queue.DISPATCH: QueueSpec(
        (dispatch,), _TIMEOUT[Function.DISPATCH], "dispatch_concurrency", with_cron=True
    ),
    Queue.ROUTER: QueueSpec((route,), _TIMEOUT[Function.ROUTE], "router_concurrency"),
    Queue.ALLOCATOR: QueueSpec((allocate_phone,), _TIMEOUT[Function.ALLOCATE_PHONE], "allocator_concurrency"),
    Queue.SELECTOR: QueueSpec((select_channel,), _TIMEOUT[Function.SELECT_CHANNEL], "selector_concurrency"),
}


async def _on_job_start(ctx: dict[str, Any]) -> None:
    bind_job(ctx["job_id"], ctx["queue"])


def worker_options(queue: Queue, config: Config) -> dict[str, Any]:
    """Keyword arguments of arq's Worker for one queue; also the attributes of its Settings class."""
    spec = QUEUES[queue]
    cron_jobs = []
    if spec.with_cron and config.dispatch_cron_enabled:
        cron_jobs.append(
            cron(
                dispatch_cron,
                name=DISPATCH_CRON_NAME,
                minute=set(range(0, 60, 5)),
                second=0,
                timeout=spec.timeout_s,
                keep_result=CRON_KEEP_RESULT_S,
                unique=True,
                max_tries=1,
            )
        )
    return {
        "functions": [
            func(
                function,
                name=function.__qualname__,
                timeout=spec.timeout_s,
                keep_result=config.keep_result_s,
                max_tries=config.retry_max_tries,
            )
            for function in spec.functions
        ],
        "cron_jobs": cron_jobs,
        "queue_name": queue.value,
        "redis_settings": arq_redis_settings(config.redis_url),
        "max_jobs": getattr(config, spec.concurrency_setting),
        "job_timeout": spec.timeout_s,
        "keep_result": config.keep_result_s,
        "max_tries": config.retry_max_tries,
        "poll_delay": config.poll_delay_s,
        "health_check_interval": config.health_check_interval_s,
        "health_check_key": health_key(queue),
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
        "job_completion_wait": int(config.shutdown_grace_s),
        "on_job_start": _on_job_start,
        "timezone": UTC,
        "log_results": False,
    }


def freeze_startup_heap() -> None:
    """Take what start-up allocated (modules, phonenumbers' metadata, the pools) out of the garbage
    collector's reach, so the full collections a dispatch batch's allocations trigger walk only the
    objects of running jobs: about 8% more dispatch throughput (bench/README.md). Nothing is leaked:
    frozen objects are those that live as long as the process anyway."""
    gc.collect()
    gc.freeze()
