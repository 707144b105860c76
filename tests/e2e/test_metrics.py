"""A real worker process with METRICS_PORT set serves the Prometheus counters it promises."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from src.client import OutreachClient
from src.runtime import metrics
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
