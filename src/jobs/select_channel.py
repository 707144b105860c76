"""select_channel: the shared channel decision for one lead of one tenant."""

from __future__ import annotations

from loguru import logger

from src.contracts import ChannelSelectionJobData, ChannelSelectionResult, Reasoning
from src.db import queries
from src.deps import Deps
from src.domain.channels import decide_channel
from src.errors import NotFound
from src.jobs.base import JobInfo, job
from src.names import Function


@job(Function.SELECT_CHANNEL, ChannelSelectionJobData)
async def select_channel(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> ChannelSelectionResult:
    async with deps.pg.acquire() as conn:
        found = await queries.load_lead(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
    if found is None:
        raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
    lead = found.lead
    decision = decide_channel(
        lead.contact(), data.preferred_channel, whatsapp_capacity=found.tenant_has_available_phone
    )
    result = ChannelSelectionResult(
        lead_id=lead.lead_id,
        selected_channel=decision.selected,
        fallback_channel=decision.fallback,
        reason_code=decision.reason,
        reasoning=Reasoning(
            has_verified_phone=decision.verified_phone is not None,
            has_verified_email=decision.has_verified_email,
            phone_opted_out=lead.whatsapp_opted_out,
            email_opted_out=lead.email_opted_out,
            current_stage=lead.engagement_stage,
            preference_score={channel.value: score for channel, score in decision.scores.items()},
            previous_engagement=lead.last_channel_used,
            whatsapp_capacity=found.tenant_has_available_phone,
            normalized_phone=decision.verified_phone,
        ),
    )
    logger.debug(
        "channel for lead {}: {} (fallback {}, {})",
        lead.lead_id,
        decision.selected,
        decision.fallback,
        decision.reason,
    )
    return result
