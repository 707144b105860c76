"""What every per-lead job does with a tenant it cannot work with or that is suspended, and allocate_phone
with a lead that may get no WhatsApp message."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis

from src.contracts import ChannelSelectionResult, PhoneAllocationResult
from src.errors import ConfigurationError, error_payload
from src.jobs.allocate_phone import allocate_phone
from src.jobs.dispatch import dispatch
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.runtime.deps import Deps
from tests.support.factories import REFUSED_LEADS, Factory
from tests.support.jobs import checked, job_ctx
from tests.support.tenants import ALWAYS_OPEN


def inputs(tenant: UUID, lead: UUID, phone: UUID) -> dict[str, tuple[Any, dict[str, Any]]]:
    lead_of_tenant = {"tenantId": str(tenant), "leadId": str(lead)}
    message = {"phoneId": str(phone), "messageType": "INITIAL", "payload": {"text": "Bună"}}
    return {
        "route": (route, lead_of_tenant | message),
        "route without a tenant": (route, {"leadId": str(lead)} | message),
        "allocate_phone": (allocate_phone, lead_of_tenant),
        "dispatch": (dispatch, {"tenantId": str(tenant), "correlationId": "c-1"}),
    }


@pytest.mark.parametrize(
    ("tenant_row", "complaint"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown timezone 'Mars/Olympus_Mons'"),
        ({"holiday_country": "XX"}, "unknown holiday country 'XX'"),
    ],
)
@pytest.mark.parametrize("job", ["route", "route without a tenant", "allocate_phone", "dispatch"])
async def test_an_unusable_tenant_row_is_bad_configuration_in_every_job(
    deps: Deps, factory: Factory, redis: Redis, tenant_row: dict[str, str], complaint: str, job: str
) -> None:
    tenant = await factory.tenant(**tenant_row)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)
    function, data = inputs(tenant, lead, phone)[job]

    with pytest.raises(ConfigurationError) as failed:
        await function(job_ctx(deps), data)

    assert error_payload(failed.value) == {
        "error": "BAD_CONFIGURATION",
        "message": f"tenant {tenant} has an unusable sending window: {complaint}",
        "retryable": False,
    }
    assert await redis.dbsize() == 0


async def test_a_suspended_tenant_gets_no_phone_and_no_channel(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN, status="SUSPENDED")
    await factory.phone(tenant)
    lead = await factory.lead(tenant)
    data = {"tenantId": str(tenant), "leadId": str(lead)}

    allocation = checked(PhoneAllocationResult, await allocate_phone(job_ctx(deps), data))
    channel = checked(ChannelSelectionResult, await select_channel(job_ctx(deps), data))

    assert (allocation["allocatedPhoneId"], allocation["allocationType"]) == (None, None)
    assert allocation["reason"].startswith("TENANT_SUSPENDED: ")
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] is None
    assert (channel["selectedChannel"], channel["fallbackChannel"], channel["reasonCode"]) == (
        None,
        None,
        "TENANT_SUSPENDED",
    )
    # The reasoning still explains the lead, as for any other outcome.
    assert channel["reasoning"]["hasVerifiedPhone"] is True
    assert channel["reasoning"]["whatsappCapacity"] is True


@pytest.mark.parametrize(("journey", "code"), REFUSED_LEADS)
@pytest.mark.parametrize("prefer_existing", [True, False])
async def test_allocate_phone_gives_no_phone_to_a_lead_that_may_get_no_message(
    deps: Deps, factory: Factory, redis: Redis, journey: dict[str, Any], code: str, prefer_existing: bool
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(tenant, status="BANNED")
    await factory.phone(tenant)
    lead = await factory.lead(tenant, assigned_phone_id=banned, **journey)
    data = {"tenantId": str(tenant), "leadId": str(lead), "preferExisting": prefer_existing}

    result = checked(PhoneAllocationResult, await allocate_phone(job_ctx(deps), data))

    assert (result["allocatedPhoneId"], result["allocationType"], result["queue"]) == (None, None, None)
    assert result["reason"].split(":")[0] == code
    assert (await factory.journey(tenant, lead))["assigned_phone_id"] == banned
    assert await redis.dbsize() == 0
