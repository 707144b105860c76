"""Dependency timeouts fit inside every job's timeout, and Config refuses settings that would not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from src.config import JOB_TIMEOUT_S, Config
from src.runtime.budget import RELEASE_S, budget_s
from src.runtime.queues import QUEUES


@pytest.mark.parametrize("setting", ["db_connect_timeout_s", "redis_socket_timeout_s"])
def test_a_dependency_timeout_longer_than_half_the_shortest_job_timeout_is_refused(setting: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Config(_env_file=None, **{setting: 3.0})  # type: ignore[call-arg]
    [error] = refused.value.errors()
    assert error["loc"] == (setting,)
    assert "more than 1s, half the shortest job timeout (select_channel, 2s)" in error["msg"]


def test_the_defaults_fit_inside_every_job_budget() -> None:
    config = Config(_env_file=None)  # type: ignore[call-arg]
    for function, timeout in JOB_TIMEOUT_S.items():
        assert config.db_connect_timeout_s < budget_s(function)
        assert config.redis_socket_timeout_s < budget_s(function)
        # what is left after the budget covers releasing a connection whose statement was cut
        assert budget_s(function) + RELEASE_S < timeout


def test_the_queues_run_each_job_with_its_timeout() -> None:
    for spec in QUEUES.values():
        for function in spec.functions:
            assert spec.timeout_s == JOB_TIMEOUT_S[function.__qualname__]  # type: ignore[index]
