"""select_channel: the shared channel decision for one lead of one tenant."""

from __future__ import annotations

from typing import Any

from loguru import logger

from src.contracts import ChannelSelectionJobData
from src.db import queries
from src.domain.channels import decide_channel
from src.errors import NotFound
from src.jobs.base import JobInfo, job
from src.names import Function
from src.runtime.deps import Deps
from src.runtime.faults import Dependency

Wire = dict[str, Any]


@job(Function.SELECT_CHANNEL, ChannelSelectionJobData, uses=frozenset({Dependency.POSTGRESQL}))
async def select_channel(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> Wire:
    """The result is the ChannelSelectionResult contract, built as its JSON form directly (a pydantic
    model cost a quarter of the job); the integration tests check it against the model."""
    async with deps.pg.acquire() as conn:
        found = await queries.channel_context(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
    if found is None:
        raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
    contact = found.contact
    decision = decide_channel(
        contact, data.preferred_channel, whatsapp_capacity=found.tenant_has_available_phone
    )
    logger.debug(
        "channel for lead {}: {} (fallback {}, {})",
        data.lead_id,
        decision.selected,
        decision.fallback,
        decision.reason,
    )
    return {
        "leadId": str(found.lead_id),
        "selectedChannel": decision.selected.value if decision.selected else None,
        "reasoning": {
            "hasVerifiedPhone": decision.verified_phone is not None,
            "hasVerifiedEmail": decision.has_verified_email,
            "phoneOptedOut": contact.whatsapp_opted_out,
            "emailOptedOut": contact.email_opted_out,
            "currentStage": contact.stage,
            "preferenceScore": {channel.value: score for channel, score in decision.scores.items()},
            "previousEngagement": contact.last_channel_used,
            "whatsappCapacity": found.tenant_has_available_phone,
            "normalizedPhone": decision.verified_phone,
        },
        "fallbackChannel": decision.fallback.value if decision.fallback else None,
        "reasonCode": decision.reason.value,
    }
