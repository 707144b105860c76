from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from src.contracts import (
    MAX_BATCH_SIZE,
    ChannelSelectionJobData,
    DispatchJobData,
    DispatchResult,
    PhoneAllocationJobData,
    RouterJobData,
)
from src.errors import InvalidJobInput

T = "8f0e1d5c-3c7a-4b8e-9a57-0a4f6c2b1e11"
L = "1b6f8e90-52c4-4c7e-8f0e-5c1d2b3a4f11"


def test_camel_case_and_snake_case_are_both_accepted() -> None:
    camel = DispatchJobData.model_validate(
        {"correlationId": "c", "tenantId": T, "batchSize": 5, "dryRun": True}
    )
    snake = DispatchJobData.model_validate(
        {"correlation_id": "c", "tenant_id": T, "batch_size": 5, "dry_run": True}
    )
    assert camel == snake
    assert camel.tenant_id == UUID(T)
    assert camel.wire()["batchSize"] == 5


def test_dispatch_defaults_follow_the_spec() -> None:
    data = DispatchJobData.model_validate({"correlationId": "c", "tenantId": "ALL"})
    assert (data.batch_size, data.channel_preference, data.dry_run) == (100, "AUTO", False)


def test_results_are_camel_case_with_every_spec_field() -> None:
    wire = DispatchResult(tenant_id=T, dry_run=False).wire()
    for field in (
        "totalEligibleLeads",
        "dispatchedToWhatsApp",
        "dispatchedToEmail",
        "skippedQuotaExceeded",
        "skippedOutsideHours",
        "skippedNoChannel",
        "skippedHumanReview",
        "jobsCreated",
        "processingTimeMs",
        "nextDispatchAt",
    ):
        assert field in wire


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (DispatchJobData, {"tenantId": T}, "correlationId"),
        (DispatchJobData, {"correlationId": "c", "tenantId": "tenant-1"}, "tenantId"),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "batchSize": "100"}, "batchSize"),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "batchSize": 0}, "batchSize"),
        (
            DispatchJobData,
            {"correlationId": "c", "tenantId": T, "batchSize": MAX_BATCH_SIZE + 1},
            "batchSize",
        ),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "batchSize": 10**30}, "batchSize"),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "batchSize": True}, "batchSize"),
        (
            DispatchJobData,
            {"correlationId": "c", "tenantId": T, "channelPreference": "SMS"},
            "channelPreference",
        ),
        (
            DispatchJobData,
            {"correlationId": "c", "tenantId": T, "priorityFilter": "URGENT"},
            "priorityFilter",
        ),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "dryRun": "yes"}, "dryRun"),
        (DispatchJobData, {"correlationId": "c", "tenantId": T, "batchsize": 5}, "batchsize"),
        (DispatchJobData, {"correlationId": "", "tenantId": T}, "correlationId"),
        (
            RouterJobData,
            {"tenantId": T, "leadId": L, "phoneId": "x", "messageType": "INITIAL", "payload": {}},
            "phoneId",
        ),
        (
            RouterJobData,
            {"tenantId": T, "leadId": L, "phoneId": L, "messageType": "SMS", "payload": {}},
            "messageType",
        ),
        (
            RouterJobData,
            {"tenantId": T, "leadId": L, "phoneId": L, "messageType": "INITIAL", "payload": []},
            "payload",
        ),
        (RouterJobData, {"tenantId": T, "leadId": L, "phoneId": L, "messageType": "INITIAL"}, "payload"),
        (PhoneAllocationJobData, {"tenantId": T}, "leadId"),
        (PhoneAllocationJobData, {"tenantId": T, "leadId": L, "preferExisting": 1}, "preferExisting"),
        (ChannelSelectionJobData, {"tenantId": 42, "leadId": L}, "tenantId"),
        (
            ChannelSelectionJobData,
            {"tenantId": T, "leadId": L, "preferredChannel": "auto"},
            "preferredChannel",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    model: type[BaseModel], payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    error = InvalidJobInput.from_validation(caught.value)
    assert field in error.fields
    assert f"{field}:" in str(error)
