from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from src.contracts import ChannelSelectionResult
from src.errors import InvalidJobInput, NotFound
from src.jobs.select_channel import select_channel
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import checked, job_ctx
from tests.support.tenants import ALWAYS_OPEN


async def run(deps: Deps, **payload: Any) -> dict[str, Any]:
    result = await select_channel(job_ctx(deps), {key: str(value) for key, value in payload.items()})
    return checked(ChannelSelectionResult, result)


async def test_selects_whatsapp_with_reasoning(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    lead = await factory.lead(tenant, company={"telefon_principal": "0721 555 666"})

    result = await run(deps, tenantId=tenant, leadId=lead)

    assert result["selectedChannel"] == "WHATSAPP"
    assert result["fallbackChannel"] == "EMAIL_COLD"
    assert result["reasoning"] == {
        "hasVerifiedPhone": True,
        "hasVerifiedEmail": True,
        "phoneOptedOut": False,
        "emailOptedOut": False,
        "currentStage": "COLD",
        "preferenceScore": {"WHATSAPP": 100, "EMAIL_COLD": 70, "EMAIL_WARM": 0},
        "previousEngagement": None,
        "whatsappCapacity": True,
        "normalizedPhone": "+40721555666",
        "whatsappLawfulBasis": "CONSENT",
        "emailLawfulBasis": "CONSENT",
        "suppressed": [],
        "objected": False,
    }


async def test_email_replaces_whatsapp_when_the_tenant_has_no_available_phone(
    deps: Deps, factory: Factory
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant, status="BANNED")
    lead = await factory.lead(tenant, engagement_stage="CONTACTED_WA", last_channel_used="WHATSAPP")

    result = await run(deps, tenantId=tenant, leadId=lead)

    assert (result["selectedChannel"], result["fallbackChannel"]) == ("EMAIL_WARM", None)
    assert result["reasoning"]["whatsappCapacity"] is False


async def test_preferred_email_respects_opt_out(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant)
    lead = await factory.lead(tenant, email_opted_out=True)

    result = await run(deps, tenantId=tenant, leadId=lead, preferredChannel="EMAIL")

    assert result["selectedChannel"] is None
    assert result["fallbackChannel"] == "WHATSAPP"
    assert result["reasonCode"] == "PREFERENCE_NOT_ALLOWED"


async def test_a_lead_of_another_tenant_is_not_found(deps: Deps, factory: Factory) -> None:
    mine, theirs = await factory.tenant(**ALWAYS_OPEN), await factory.tenant(**ALWAYS_OPEN)
    their_lead = await factory.lead(theirs)

    with pytest.raises(NotFound, match=f"lead {their_lead} not found for tenant {mine}"):
        await run(deps, tenantId=mine, leadId=their_lead)


async def test_unknown_lead_is_a_permanent_failure(deps: Deps, factory: Factory) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    with pytest.raises(NotFound):
        await run(deps, tenantId=tenant, leadId=uuid4())


async def test_bad_input_names_the_field(deps: Deps) -> None:
    with pytest.raises(InvalidJobInput) as caught:
        await select_channel(job_ctx(deps), {"tenantId": str(uuid4()), "leadId": "lead-7"})
    assert caught.value.fields == ["leadId"]
