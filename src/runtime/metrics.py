"""Prometheus metrics. The endpoint is off unless METRICS_PORT is set; the counters cost nothing to keep.

The per-phone quota gauges are kept only by a process that serves them: a labelled series costs about
0.8 KB, and a worker that dispatches for 10,000 tenants of 2 phones would otherwise hold 40,000 of them
(31 MB, a fifth of its peak RSS; bench/through_worker.py) for nobody to read."""

from __future__ import annotations

import contextlib
from functools import cache, lru_cache

from prometheus_client import Counter, Gauge, Histogram, start_http_server

JOB_DURATION = Histogram(
    "cerniq_job_duration_seconds",
    "Time spent in a job function, by function and outcome (ok, failed, retried).",
    ["function", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LEADS = Counter(
    "cerniq_dispatch_leads_total",
    "Leads a dispatch decided on, by outcome, channel and reason.",
    ["outcome", "channel", "reason"],
)
QUOTA_USED = Gauge(
    "cerniq_phone_quota_used",
    "WhatsApp sends reserved today on a phone, as last seen by this process.",
    ["phone_id", "tenant_id"],
)
QUOTA_LIMIT = Gauge(
    "cerniq_phone_quota_limit",
    "Daily limit of a phone, as last seen by this process.",
    ["phone_id", "tenant_id"],
)

EFFECTIVE_LIMIT = Gauge(
    "cerniq_phone_effective_limit",
    "WhatsApp sends a phone may make today (tenant-local): its daily limit, or less while it warms up.",
    ["phone_id", "tenant_id"],
)
PORTFOLIO_USED = Gauge(
    "cerniq_portfolio_recipients_24h",
    "Unique WhatsApp recipients a tenant's phones messaged (or scheduled) in the last 24 h.",
    ["tenant_id"],
)
PORTFOLIO_LIMIT = Gauge(
    "cerniq_portfolio_limit",
    "A tenant's portfolio budget: unique recipients in any 24 h (absent: no limit).",
    ["tenant_id"],
)


@cache
def _job_duration(function: str, outcome: str) -> Histogram:
    # prometheus_client's labels() locks and builds a key on every call; the children are few and fixed.
    return JOB_DURATION.labels(function, outcome)


@cache
def _leads(outcome: str, channel: str, reason: str) -> Counter:
    return LEADS.labels(outcome, channel, reason)


def observe_job(function: str, outcome: str, seconds: float) -> None:
    _job_duration(function, outcome).observe(seconds)


def count_lead(outcome: str, channel: str | None, reason: str, amount: int = 1) -> None:
    _leads(outcome, channel or "NONE", reason).inc(amount)


def count_leads(outcome: str, reason: str, amount: int) -> None:
    """Leads skipped as a group, without a decision each: SKIPPED_OUTSIDE_HOURS, SKIPPED_HUMAN_REVIEW."""
    if amount:
        _leads(outcome, "NONE", reason).inc(amount)


@lru_cache(maxsize=16_384)
def _quota(phone_id: str, tenant_id: str) -> tuple[Gauge, Gauge]:
    return QUOTA_USED.labels(phone_id, tenant_id), QUOTA_LIMIT.labels(phone_id, tenant_id)


_serving = False


def set_quota(phone_id: str, tenant_id: str, used: int, limit: int) -> None:
    if not _serving:
        return
    used_gauge, limit_gauge = _quota(phone_id, tenant_id)
    used_gauge.set(used)
    limit_gauge.set(limit)


def set_effective_limit(phone_id: str, tenant_id: str, limit: int) -> None:
    EFFECTIVE_LIMIT.labels(phone_id, tenant_id).set(limit)


def set_portfolio(tenant_id: str, used: int, limit: int | None) -> None:
    PORTFOLIO_USED.labels(tenant_id).set(used)
    if limit is not None:
        PORTFOLIO_LIMIT.labels(tenant_id).set(limit)
        return
    with contextlib.suppress(KeyError):  # a limit taken off: no series, as for a tenant that never had one
        PORTFOLIO_LIMIT.remove(tenant_id)


def serve(port: int) -> None:
    """Start the /metrics endpoint on a daemon thread (no-op for port 0)."""
    global _serving
    if port:
        start_http_server(port)
        _serving = True
