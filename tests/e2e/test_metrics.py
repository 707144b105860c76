"""A real worker process with METRICS_PORT set serves the Prometheus counters it promises."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from datetime import date, timedelta

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from src.client import OutreachClient
from src.names import portfolio_key
from src.runtime import metrics
from src.runtime.clock import FixedClock, epoch_ms
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.net import free_port
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(
    port: int, name: str, timeout: float = 10.0, **labels: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The metrics once the series `name{labels}` is there: a gauge sampled in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        metrics = await asyncio.to_thread(scrape, port)
        if (name, frozenset(labels.items())) in metrics or asyncio.get_running_loop().time() > deadline:
            return metrics
        await asyncio.sleep(0.1)


async def test_metrics_count_leads_time_jobs_and_show_quota(
    deps: Deps, factory: Factory, redis: Redis, client: OutreachClient, workers: Workers
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000077", daily_limit=120)
    whatsapp = await factory.leads(tenant, 2)
    await factory.lead(tenant, company={"hlr_reachable": False})
    await factory.lead(tenant, whatsapp_opted_out=True, email_opted_out=True)
    port = free_port()

    async with workers.new("Settings", METRICS_PORT=str(port)) as worker:
        await worker.wait_healthy(redis)
        result = await (await client.dispatch(tenant_id=tenant)).result(timeout=20)
        assert (result.dispatched_to_whatsapp, result.dispatched_to_email) == (2, 1)
        await (await client.select_channel(tenant_id=tenant, lead_id=whatsapp[0])).result(timeout=10)
        metrics = await asyncio.to_thread(scrape, port)

    leads = "cerniq_dispatch_leads_total"
    assert sample(metrics, leads, outcome="DISPATCHED", channel="WHATSAPP", reason="NEW_PHONE") == 2
    assert sample(metrics, leads, outcome="DISPATCHED", channel="EMAIL_COLD", reason="BEST_SCORE") == 1
    assert sample(metrics, leads, outcome="SKIPPED_NO_CHANNEL", channel="NONE", reason="OPTED_OUT") == 1

    durations = "cerniq_job_duration_seconds_count"
    assert sample(metrics, durations, function="dispatch", outcome="ok") == 1
    assert sample(metrics, durations, function="select_channel", outcome="ok") == 1
    assert sample(metrics, "cerniq_job_duration_seconds_sum", function="dispatch", outcome="ok") > 0

    labels = {"phone_id": str(phone), "tenant_id": str(tenant)}
    assert sample(metrics, "cerniq_phone_quota_used", **labels) == 2
    assert sample(metrics, "cerniq_phone_quota_limit", **labels) == 120


async def test_metrics_show_the_effective_limit_and_the_portfolio_budget_used(
    deps: Deps, factory: Factory, redis: Redis, workers: Workers, clock: FixedClock, today: date
) -> None:
    budgeted = await factory.tenant(wa_portfolio_limit=250)
    warming = await factory.phone(budgeted, daily_limit=200, warmup_started_on=today - timedelta(days=2))
    warm = await factory.phone(budgeted, daily_limit=150)
    unlimited = await factory.tenant()
    await factory.phone(unlimited)
    now = clock()
    recipients = {"+40700000001": now - timedelta(hours=1), "+40700000002": now + timedelta(minutes=30)}
    recipients["+40700000003"] = now - timedelta(hours=25)  # older than 24 h: no longer counted
    await redis.zadd(portfolio_key(budgeted), {n: epoch_ms(at) for n, at in recipients.items()})
    port = free_port()

    async with workers.new("Settings", METRICS_PORT=str(port)) as worker:
        await worker.wait_healthy(redis)
        metrics = await scrape_until(port, "cerniq_portfolio_recipients_24h", tenant_id=str(unlimited))

    tenant = str(budgeted)
    # Warm-up day 3: 20 + 2 * 10.
    assert sample(metrics, "cerniq_phone_effective_limit", phone_id=str(warming), tenant_id=tenant) == 40
    assert sample(metrics, "cerniq_phone_effective_limit", phone_id=str(warm), tenant_id=tenant) == 150
    assert sample(metrics, "cerniq_portfolio_recipients_24h", tenant_id=tenant) == 2
    assert sample(metrics, "cerniq_portfolio_limit", tenant_id=tenant) == 250
    assert sample(metrics, "cerniq_portfolio_recipients_24h", tenant_id=str(unlimited)) == 0
    assert ("cerniq_portfolio_limit", frozenset({("tenant_id", str(unlimited))})) not in metrics


async def test_metrics_are_off_by_default(deps: Deps, redis: Redis, workers: Workers) -> None:
    port = free_port()
    async with workers.new("Settings") as worker:
        await worker.wait_healthy(redis)
        with pytest.raises(urllib.error.URLError, match="Connection refused"):  # nothing listens
            await asyncio.to_thread(scrape, port)


def test_leads_skipped_as_a_group_are_counted_by_outcome_and_reason() -> None:
    labels = {"outcome": "SKIPPED_OUTSIDE_HOURS", "channel": "NONE", "reason": "OUTSIDE_SENDING_WINDOW"}
    before = REGISTRY.get_sample_value("cerniq_dispatch_leads_total", labels) or 0.0
    metrics.count_leads("SKIPPED_OUTSIDE_HOURS", "OUTSIDE_SENDING_WINDOW", 7)
    metrics.count_leads("SKIPPED_OUTSIDE_HOURS", "OUTSIDE_SENDING_WINDOW", 0)
    assert REGISTRY.get_sample_value("cerniq_dispatch_leads_total", labels) == before + 7
