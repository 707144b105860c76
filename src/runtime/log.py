"""Loguru, configured once; stdlib logging (arq, SQLAlchemy, asyncio) routed into it.

Inside a job every line carries job_id, queue, correlationId and tenantId: the worker puts a mutable dict
in a context variable when the job starts (arq's own start and finish lines run in the same task), and the
job fills in the tenant and correlation id once its input is valid.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from src.errors import JobError

if TYPE_CHECKING:
    from loguru import Logger, Message, Record

_job_fields: ContextVar[dict[str, str] | None] = ContextVar("job_fields", default=None)
_configured: tuple[str, str] | None = None


def bind_job(job_id: str, queue: str) -> dict[str, str]:
    """Start the log context of one job in the current task; returns it for the job to enrich."""
    fields = {"job_id": job_id, "queue": queue}
    _job_fields.set(fields)
    return fields


def enrich_job(**values: str | None) -> None:
    fields = _job_fields.get()
    if fields is not None:
        fields.update({key: value for key, value in values.items() if value})


_CONTEXT_KEYS = ("queue", "job_id", "tenantId", "correlationId")
# The "[queue=... job_id=...] " prefix of a text line, put in `extra` by the patcher. The text format then
# stays one constant string, which loguru parses once; a format function's result is parsed per line,
# and that was a third of the cost of a log line.
_CONTEXT = "_context"
_TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "<cyan>{name}</cyan> | {extra[_context]}{message}"
)


def _patch(record: Record) -> None:
    extra = record["extra"]
    fields = _job_fields.get()
    if fields:
        extra.update(fields)
    context = " ".join(f"{key}={extra[key]}" for key in _CONTEXT_KEYS if key in extra)
    extra[_CONTEXT] = f"[{context}] " if context else ""


def _renamed(name: str) -> Callable[[Record], None]:
    def rename(entry: Record) -> None:
        entry["name"] = name

    return rename


class _InterceptHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        # One loguru logger per stdlib logger name, made once: `logger.patch` per line costs more than
        # the line.
        self._named: dict[str, Logger] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        named = self._named.get(record.name)
        if named is None:
            named = self._named[record.name] = logger.patch(_renamed(record.name))

        # A permanent job failure (bad input, unknown lead) is fully said by its message: no traceback.
        exc_info = record.exc_info
        if exc_info and isinstance(exc_info[1], JobError):
            exc_info = None
        if exc_info:
            named = named.opt(exception=exc_info)
        named.log(level, record.getMessage())


# The loggers arq writes to (arq/worker.py, connections.py, jobs.py, cron.py, utils.py of the pinned version).
_ARQ_LOGGERS = ("arq.worker", "arq.connections", "arq.jobs", "arq.cron", "arq.utils")


class _ToLoguru(logging.Filter):
    """Hands a record to loguru and drops it from the stdlib chain, so no stdlib handler prints it."""

    def __init__(self, handler: _InterceptHandler) -> None:
        super().__init__()
        self._handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        self._handler.emit(record)
        return False


def _stderr_sink(message: Message) -> None:
    # The stream is looked up at each write, so redirecting sys.stderr (tests, supervisors) just works.
    sys.stderr.write(message)


def _json_sink(message: Message) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "logger": record["name"],
        "message": record["message"],
    }
    line.update({key: value for key, value in record["extra"].items() if key not in line and key != _CONTEXT})
    if record["exception"] is not None:
        exc_type, exc_value, _ = record["exception"]
        line["exception"] = f"{exc_type.__name__ if exc_type else 'Exception'}: {exc_value}"
        line["traceback"] = "".join(_format_traceback(record))
    sys.stderr.write(orjson.dumps(line, default=str).decode() + "\n")


def _format_traceback(record: Record) -> list[str]:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return []
    return traceback.format_exception(exc.type, exc.value, exc.traceback)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Set up loguru once and route the stdlib into it; calling it again re-applies the routing.

    arq's CLI runs logging.config.dictConfig after importing the worker settings: the "arq" logger gets
    its own StreamHandler, and its children lose their handlers and propagation, but keep their filters.
    So arq's loggers carry a filter that hands each record to loguru and stops it there; the worker
    config call this before arq's dictConfig, and from their first line arq's records look like ours.
    """
    global _configured
    if _configured != (level, fmt):
        logger.remove()
        logger.configure(patcher=_patch)
        if fmt == "json":
            logger.add(_json_sink, level=level, format="{message}", backtrace=False, diagnose=False)
        else:
            logger.add(
                _stderr_sink,
                level=level,
                format=_TEXT_FORMAT,
                colorize=sys.stderr.isatty(),
                backtrace=False,
                diagnose=False,
            )
        _configured = (level, fmt)

    handler = _InterceptHandler()
    # Records below the level are dropped by the stdlib, before a LogRecord and the intercept are paid for.
    logging.basicConfig(handlers=[handler], level=logger.level(level).no, force=True)
    for name in _ARQ_LOGGERS:
        arq_logger = logging.getLogger(name)
        for old in [f for f in arq_logger.filters if isinstance(f, _ToLoguru)]:
            arq_logger.removeFilter(old)
        arq_logger.addFilter(_ToLoguru(handler))
    for name in ("sqlalchemy", "sqlalchemy.engine", "asyncio", "alembic"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.WARNING)
