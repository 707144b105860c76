"""Composition root of the worker process.

    arq src.worker.Settings           all four queues in one process (the usual way to run it)
    arq src.worker.DispatchSettings   one queue alone; likewise RouterSettings, AllocatorSettings,
                                      SelectorSettings, for an operator who outgrows one process
    arq src.worker.DispatchSettings --check   liveness of that queue's workers (its health key)

arq reads worker options from class attributes. They are built on first access (PEP 562 module
`__getattr__`), so importing this module reads no configuration; asking arq for `Config` does.

`Config` is a launcher: arq builds a Worker from it whose startup hook runs the QueueSupervisor, which
owns one Worker per queue (see src/supervisor.py) and returns only at shutdown. That launcher Worker
never polls a queue itself.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import uvloop
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import Worker, func

from src.config import Config as Config
from src.config import get_config
from src.jobs.allocate_phone import allocate_phone
from src.jobs.base import JobCoroutine
from src.jobs.dispatch import dispatch, dispatch_cron
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.names import ALL_QUEUES_HEALTH_KEY, DISPATCH_CRON_NAME, Queue, health_key
from src.redis_io.codec import job_deserializer, job_serializer
from src.redis_io.connection import arq_redis_settings
from src.runtime import metrics
from src.runtime.deps import build_deps, close_deps
from src.runtime.log import bind_job, configure_logging
from src.runtime.supervisor import QueueSupervisor, SupervisedWorker

# A cron job's result is kept for an hour: arq refuses to enqueue a job id whose result exists, so a
# worker with a skewed clock cannot run the same tick again after the in-progress key is gone (arq #196).
CRON_KEEP_RESULT_S = 3600


@dataclass(frozen=True)
class QueueSpec:
    functions: tuple[JobCoroutine, ...]
    timeout_s: float
    concurrency_setting: str
    with_cron: bool = False


QUEUES: dict[Queue, QueueSpec] = {
    Queue.DISPATCH: QueueSpec((dispatch,), 30, "dispatch_concurrency", with_cron=True),
    Queue.ROUTER: QueueSpec((route,), 5, "router_concurrency"),
    Queue.ALLOCATOR: QueueSpec((allocate_phone,), 3, "allocator_concurrency"),
    Queue.SELECTOR: QueueSpec((select_channel,), 2, "selector_concurrency"),
}


async def _on_job_start(ctx: dict[str, Any]) -> None:
    bind_job(ctx["job_id"], ctx["queue"])


def worker_options(queue: Queue, settings: Config) -> dict[str, Any]:
    """Keyword arguments of arq's Worker for one queue; also the attributes of its Config class."""
    spec = QUEUES[queue]
    cron_jobs = []
    if spec.with_cron and settings.dispatch_cron_enabled:
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
                keep_result=settings.keep_result_s,
                max_tries=settings.retry_max_tries,
            )
            for function in spec.functions
        ],
        "cron_jobs": cron_jobs,
        "queue_name": queue.value,
        "redis_settings": arq_redis_settings(settings.redis_url),
        "max_jobs": getattr(settings, spec.concurrency_setting),
        "job_timeout": spec.timeout_s,
        "keep_result": settings.keep_result_s,
        "max_tries": settings.retry_max_tries,
        "poll_delay": settings.poll_delay_s,
        "health_check_interval": settings.health_check_interval_s,
        "health_check_key": health_key(queue),
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
        "job_completion_wait": int(settings.shutdown_grace_s),
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


# ---------------------------------------------------------------- one queue per process


def _single_queue_settings(queue: Queue) -> type:
    settings = _prepare_process()

    async def startup(ctx: dict[str, Any]) -> None:
        configure_logging(settings.log_level, settings.log_format)
        ctx["queue"] = queue.value
        ctx["deps"] = await build_deps(settings)
        metrics.serve(settings.metrics_port)
        freeze_startup_heap()

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "deps" in ctx:
            await close_deps(ctx.pop("deps"))

    options = worker_options(queue, settings) | {"on_startup": startup, "on_shutdown": shutdown}
    return type(f"{queue.name.title()}Settings", (), options)


# ---------------------------------------------------------------- all queues in one process


def _all_queues_settings() -> type:
    settings = _prepare_process()

    async def run_all_queues(ctx: dict[str, Any]) -> None:
        configure_logging(settings.log_level, settings.log_format)
        deps = await build_deps(settings)
        ctx["deps"] = deps
        metrics.serve(settings.metrics_port)
        freeze_startup_heap()

        def make_worker(queue: Queue, pool: ArqRedis) -> Worker:
            options = worker_options(queue, settings)
            options.pop("redis_settings")
            return SupervisedWorker(
                **options, redis_pool=pool, handle_signals=False, ctx={"deps": deps, "queue": queue.value}
            )

        supervisor = QueueSupervisor(settings, list(QUEUES), make_worker, redis=deps.redis)
        supervisor.install_signal_handlers()
        await supervisor.run()
        # Leave through arq's own shutdown path: Worker.run() treats CancelledError as a normal stop,
        # then runs on_shutdown and exits 0.
        raise asyncio.CancelledError

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "deps" in ctx:
            await close_deps(ctx.pop("deps"))

    launcher = worker_options(Queue.DISPATCH, settings) | {
        "cron_jobs": [],
        "on_startup": run_all_queues,
        "on_shutdown": shutdown,
        "health_check_key": ALL_QUEUES_HEALTH_KEY,
        "job_completion_wait": 0,
    }
    return type("Settings", (), launcher)


def _prepare_process() -> Config:
    settings = get_config()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return settings


_BUILDERS: dict[str, Callable[[], type]] = {
    "Settings": _all_queues_settings,
    "DispatchSettings": lambda: _single_queue_settings(Queue.DISPATCH),
    "RouterSettings": lambda: _single_queue_settings(Queue.ROUTER),
    "AllocatorSettings": lambda: _single_queue_settings(Queue.ALLOCATOR),
    "SelectorSettings": lambda: _single_queue_settings(Queue.SELECTOR),
}


def __getattr__(name: str) -> type:
    if name not in _BUILDERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = _BUILDERS[name]()
    globals()[name] = built
    return built
