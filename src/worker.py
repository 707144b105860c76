"""The worker process's entry points, for arq's command line.

    arq src.worker.Settings           all four queues in one process (the usual way to run it)
    arq src.worker.DispatchSettings   one queue alone; likewise RouterSettings, AllocatorSettings,
                                      SelectorSettings, for an operator who outgrows one process
    arq src.worker.DispatchSettings --check   liveness of that queue's workers (its health key)

Each is a plain class whose attributes are arq's Worker options. A class decorator fills them in from
the configuration (environment and .env) when arq imports this module: arq reads a settings class's own
`__dict__`, so the options cannot come from a base class. Nothing but arq imports this module; the
queues themselves are described in src/runtime/queues.py.

Each is a launcher: arq builds a Worker from it whose startup hook runs the QueueSupervisor, which owns
one Worker per queue (src/runtime/supervisor.py), restarts those Redis takes down, and returns only at
shutdown. The launcher Worker never polls a queue itself. So a one-queue process, like the all-queues
one, outlives a Redis outage or failover instead of exiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import uvloop
from arq.connections import ArqRedis
from arq.worker import Worker

from src.config import Config, get_config
from src.names import ALL_QUEUES_HEALTH_KEY, Queue, health_key
from src.runtime import metrics, sender_gauges
from src.runtime.deps import build_deps, close_deps, for_queues
from src.runtime.log import configure_logging
from src.runtime.queues import QUEUES, freeze_startup_heap, worker_options
from src.runtime.supervisor import QueueSupervisor, SupervisedWorker

C = TypeVar("C", bound=type)


def _prepare_process() -> Config:
    config = get_config()
    configure_logging(config.log_level, config.log_format)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return config


CONFIG = _prepare_process()


def _options(cls: C, options: dict[str, Any]) -> C:
    for name, value in options.items():
        setattr(cls, name, value)
    return cls


async def _shutdown(ctx: dict[str, Any]) -> None:
    if "deps" in ctx:
        await close_deps(ctx.pop("deps"))


def supervised(queues: Sequence[Queue], *, health_check_key: str) -> Callable[[C], C]:
    """The options of a launcher that runs `queues`, one arq Worker each, under one supervisor, which
    restarts a queue worker that Redis took down (a restart, an outage, a Sentinel failover) once Redis
    answers again. `health_check_key` is what `--check` reads: the process's own key for several
    queues, the queue's own for one."""

    async def run_queues(ctx: dict[str, Any]) -> None:
        configure_logging(CONFIG.log_level, CONFIG.log_format)
        deps = await build_deps(CONFIG)
        ctx["deps"] = deps
        metrics.serve(CONFIG.metrics_port)
        queue_deps = for_queues(deps, queues)
        freeze_startup_heap()

        def make_worker(queue: Queue, pool: ArqRedis) -> Worker:
            options = worker_options(queue, CONFIG)
            options.pop("redis_settings")
            return SupervisedWorker(
                **options,
                redis_pool=pool,
                handle_signals=False,
                idle_poll_s=CONFIG.idle_poll_s,
                ctx={"deps": queue_deps[queue], "queue": queue.value},
            )

        # One queue: its worker keeps the queue's health key; several: the supervisor keeps the process's.
        own_key = ALL_QUEUES_HEALTH_KEY if len(queues) > 1 else None
        supervisor = QueueSupervisor(CONFIG, list(queues), make_worker, redis=deps.redis, health_key=own_key)
        supervisor.install_signal_handlers()
        gauges = asyncio.create_task(sender_gauges.keep_sampling(deps)) if CONFIG.metrics_port else None
        try:
            await supervisor.run()
        finally:
            if gauges is not None:
                gauges.cancel()
        # Leave through arq's own shutdown path: Worker.run() treats CancelledError as a normal stop,
        # then runs on_shutdown and exits 0.
        raise asyncio.CancelledError

    launcher = worker_options(queues[0], CONFIG) | {
        "cron_jobs": [],
        "on_startup": run_queues,
        "on_shutdown": _shutdown,
        "health_check_key": health_check_key,
        "job_completion_wait": 0,
    }
    return lambda cls: _options(cls, launcher)


def one_queue(queue: Queue) -> Callable[[C], C]:
    """The options of a process that serves `queue` alone."""
    return supervised([queue], health_check_key=health_key(queue))


all_queues = supervised(list(QUEUES), health_check_key=ALL_QUEUES_HEALTH_KEY)


@all_queues
class Settings:
    """`arq src.worker.Settings`: the four queues in one process."""


@one_queue(Queue.DISPATCH)
class DispatchSettings:
    """`arq src.worker.DispatchSettings`: the dispatch queue alone, with the */5 cron."""


@one_queue(Queue.ROUTER)
class RouterSettings:
    """`arq src.worker.RouterSettings`: the router queue alone."""


@one_queue(Queue.ALLOCATOR)
class AllocatorSettings:
    """`arq src.worker.AllocatorSettings`: the phone allocator queue alone."""


@one_queue(Queue.SELECTOR)
class SelectorSettings:
    """`arq src.worker.SelectorSettings`: the channel selector queue alone."""
