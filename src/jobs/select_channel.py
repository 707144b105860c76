"""select_channel: the shared channel decision for one lead of one tenant."""

from __future__ import annotations

from loguru import logger

from src import results
from src.contracts import ChannelSelectionJobData
from src.db import queries
from src.domain.channels import decide_channel
from src.domain.lead_gate import Refusal
from src.errors import NotFound
from src.jobs.base import JobInfo, job
from src.names import Function
from src.results import Wire
from src.runtime.deps import Deps
from src.runtime.faults import Dependency


@job(Function.SELECT_CHANNEL, ChannelSelectionJobData, uses=frozenset({Dependency.POSTGRESQL}))
async def select_channel(deps: Deps, data: ChannelSelectionJobData, info: JobInfo) -> Wire:
    async with deps.pg.acquire() as conn:
        found = await queries.channel_context(conn, tenant_id=data.tenant_id, lead_id=data.lead_id)
    if found is None:
        raise NotFound(f"lead {data.lead_id} not found for tenant {data.tenant_id}")
    decision = decide_channel(
        found.contact,
        data.preferred_channel,
        whatsapp_capacity=found.tenant_has_available_phone,
        lawful=found.lawful,
    )
    # A suspended tenant sends nothing: no channel, whatever the lead allows (the reasoning still says).
    refusal = Refusal.TENANT_SUSPENDED if found.tenant_status != "ACTIVE" else None
    logger.debug(
        "channel for lead {}: {} (fallback {}, {})",
        data.lead_id,
        None if refusal else decision.selected,
        None if refusal else decision.fallback,
        refusal or decision.reason,
    )
    return results.channel_selection(
        lead_id=found.lead_id,
        contact=found.contact,
        decision=decision,
        whatsapp_capacity=found.tenant_has_available_phone,
        lawful=found.lawful,
        refusal=refusal,
    )
