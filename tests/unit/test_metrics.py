"""The per-phone quota gauges are kept only by a process that serves /metrics."""

from __future__ import annotations

from uuid import uuid4

import pytest
from prometheus_client import REGISTRY

from src.runtime import metrics


def quota_samples(phone_id: str) -> list[float]:
    return [
        sample.value
        for family in REGISTRY.collect()
        if family.name in ("cerniq_phone_quota_used", "cerniq_phone_quota_limit")
        for sample in family.samples
        if sample.labels.get("phone_id") == phone_id
    ]


def test_a_process_without_the_endpoint_keeps_no_series_per_phone() -> None:
    phone = str(uuid4())
    metrics.set_quota(phone, str(uuid4()), used=3, limit=10)
    assert quota_samples(phone) == []


def test_a_process_serving_metrics_keeps_each_phone_s_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_serving", True)
    phone = str(uuid4())
    metrics.set_quota(phone, str(uuid4()), used=3, limit=10)
    assert sorted(quota_samples(phone)) == [3.0, 10.0]
