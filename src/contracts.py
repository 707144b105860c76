"""Job inputs and results: the public contract of the four queues (camelCase on the wire).

Inputs are strict: a wrong type is refused, not coerced, and unknown fields are refused, so that a typo in
an ops script fails loudly instead of being ignored. Attributes are snake_case; either form is accepted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from src.errors import InvalidJobInput

# A dispatch batch of 1000 leads takes about 0.1 s (bench/dispatch_throughput.py), so the bound leaves the
# 30 s job timeout a margin of two orders of magnitude, and keeps one Lua call short enough not to stall
# Redis for other clients.
MAX_BATCH_SIZE = 1000

ALL_TENANTS: Final = "ALL"

# The most tenants one dispatch job takes together (`tenantIds`); the fan-out's groups are far smaller
# (DISPATCH_GROUP_LEADS).
MAX_GROUP_TENANTS = 1000


class Channel(StrEnum):
    WHATSAPP = "WHATSAPP"
    EMAIL_COLD = "EMAIL_COLD"
    EMAIL_WARM = "EMAIL_WARM"


class ChannelPreference(StrEnum):
    AUTO = "AUTO"
    WHATSAPP = "WHATSAPP"
    EMAIL = "EMAIL"


class Priority(StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


class MessageType(StrEnum):
    INITIAL = "INITIAL"
    FOLLOWUP = "FOLLOWUP"


class AllocationType(StrEnum):
    NEW = "NEW"
    STICKY = "STICKY"
    FALLBACK = "FALLBACK"


def _tenant_selector(value: object) -> object:
    if value == ALL_TENANTS or isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValueError(f"must be a tenant UUID or {ALL_TENANTS!r}")


# Strict input still takes an id or an enum value as its JSON string.
Uuid = Annotated[UUID, Strict(False)]
PreferenceIn = Annotated[ChannelPreference, Strict(False)]
PriorityIn = Annotated[Priority, Strict(False)]
MessageTypeIn = Annotated[MessageType, Strict(False)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form that goes on a queue or into a stored result."""
        return self.model_dump(mode="json", by_alias=True)


class _Input(_Wire):
    model_config = ConfigDict(strict=True, extra="forbid")


class DispatchJobData(_Input):
    correlation_id: ShortText
    tenant_id: Annotated[UUID | Literal["ALL"], BeforeValidator(_tenant_selector)]
    batch_size: int = Field(default=100, ge=1, le=MAX_BATCH_SIZE)
    channel_preference: PreferenceIn = ChannelPreference.AUTO
    priority_filter: PriorityIn | None = None
    sequence_filter: ShortText | None = None
    dry_run: bool = False
    # With tenantId "ALL": exactly these tenants, dispatched together in this one job, each as its own
    # dispatch would be (what the fan-out enqueues for small tenants). Beyond the spec.
    tenant_ids: list[Uuid] | None = Field(default=None, min_length=1, max_length=MAX_GROUP_TENANTS)

    def wire(self) -> dict[str, Any]:
        """Without `tenantIds` when there are none: a tenant's own job reads as it always has."""
        wire = super().wire()
        if self.tenant_ids is None:
            del wire["tenantIds"]
        return wire

    @field_validator("tenant_ids")
    @classmethod
    def _group_of_all(cls, value: list[UUID] | None, info: ValidationInfo) -> list[UUID] | None:
        if value is None:
            return value
        if info.data.get("tenant_id") != ALL_TENANTS:
            raise ValueError(f"only with tenantId {ALL_TENANTS!r}")
        if len(set(value)) != len(value):
            raise ValueError("a tenant is named twice")
        return value


class RouterJobData(_Input):
    """The specification's RouterJobData. `tenant_id` is optional: without it the tenant is the lead's
    own. `send_now` (a reply to the lead's own message) skips the sending window, nothing else."""

    tenant_id: Uuid | None = None
    lead_id: Uuid
    phone_id: Uuid
    message_type: MessageTypeIn
    payload: dict[str, Any]
    correlation_id: ShortText | None = None
    send_now: bool = False


def check_payload_size(payload: dict[str, Any], *, limit: int) -> None:
    """Refuse a router payload over `limit` bytes as JSON (MAX_PAYLOAD_BYTES): it would be copied whole
    into the output queue and into arq's stored result of the router job."""
    try:
        size = len(orjson.dumps(payload))
    except orjson.JSONEncodeError as exc:
        raise InvalidJobInput(f"invalid job input: payload: not JSON: {exc}", ["payload"]) from None
    if size > limit:
        raise InvalidJobInput(
            f"invalid job input: payload: {size} bytes as JSON, over the limit of {limit} "
            "(MAX_PAYLOAD_BYTES)",
            ["payload"],
        )


class _LeadJobInput(_Input):
    """The input of a job about one lead of one tenant."""

    tenant_id: Uuid
    lead_id: Uuid
    correlation_id: ShortText | None = None


class PhoneAllocationJobData(_LeadJobInput):
    prefer_existing: bool = True


class ChannelSelectionJobData(_LeadJobInput):
    preferred_channel: PreferenceIn = ChannelPreference.AUTO


# ---------------------------------------------------------------- results


class Reasoning(_Wire):
    has_verified_phone: bool
    has_verified_email: bool
    phone_opted_out: bool
    email_opted_out: bool
    current_stage: str
    preference_score: dict[str, int]
    previous_engagement: str | None
    whatsapp_capacity: bool
    normalized_phone: str | None
    # What the law says of the lead (src/domain/lawful.py): its bases, the media a suppression entry
    # blocks for it (WHATSAPP, EMAIL), and whether it objected.
    whatsapp_lawful_basis: str | None = None
    email_lawful_basis: str | None = None
    suppressed: list[str] = Field(default_factory=list)
    objected: bool = False


class ChannelSelectionResult(_Wire):
    lead_id: UUID
    selected_channel: Channel | None
    reasoning: Reasoning
    fallback_channel: Channel | None
    reason_code: str


class QuotaStatus(_Wire):
    current_usage: int
    remaining: int
    daily_limit: int
    quota_date: str


class PhoneAllocationResult(_Wire):
    lead_id: UUID
    allocated_phone_id: UUID | None
    allocation_type: AllocationType | None
    phone_quota_status: QuotaStatus | None
    reason: str
    previous_phone_id: UUID | None = None
    queue: str | None = None


class RouterResult(_Wire):
    routed: bool
    target_queue: str | None
    job_id: str | None
    phone_id: UUID | None
    rerouted_from: UUID | None
    enqueued: bool
    reason: str
    # Outside the sending window the message waits on its queue until the window opens (scheduled_at).
    deferred: bool = False
    scheduled_at: datetime | None = None


class JobCreated(_Wire):
    job_id: str
    lead_id: UUID
    channel: Channel
    queue: str
    phone_id: UUID | None = None
    # A WhatsApp job's paced send time (issue 10): its score in the phone queue; None for an e-mail.
    scheduled_at: datetime | None = None


class LeadDecision(_Wire):
    lead_id: UUID
    outcome: Literal[
        "DISPATCHED", "SKIPPED_QUOTA", "SKIPPED_NO_CHANNEL", "SKIPPED_WINDOW_FULL", "SKIPPED_PORTFOLIO_LIMIT"
    ]
    channel: Channel | None
    phone_id: UUID | None
    reason: str
    job_id: str | None = None
    scheduled_at: datetime | None = None


class TenantJob(_Wire):
    tenant_id: UUID
    job_id: str
    enqueued: bool


class TenantError(_Wire):
    """A tenant an ALL dispatch left out, and why (the code and message its own dispatch would fail with)."""

    tenant_id: UUID
    error: str
    message: str


class DispatchResult(_Wire):
    tenant_id: str
    dry_run: bool
    total_eligible_leads: int = 0
    dispatched_to_whatsapp: int = Field(default=0, alias="dispatchedToWhatsApp")
    dispatched_to_email: int = 0
    skipped_quota_exceeded: int = 0
    skipped_outside_hours: int = 0
    skipped_no_channel: int = 0
    skipped_human_review: int = 0
    jobs_created: list[JobCreated] = Field(default_factory=list)
    processing_time_ms: int = 0
    next_dispatch_at: datetime | None = None
    # Beyond the spec.
    outside_sending_window: bool = False
    duplicate_jobs_skipped: int = 0
    relayed_from_outbox: int = 0
    # WhatsApp leads that wait for a later day (issue 10): no slot left in the window at their phone's pace,
    # or the tenant's 24 h portfolio budget spent.
    skipped_window_full: int = 0
    skipped_portfolio_limit: int = 0
    decisions: list[LeadDecision] = Field(default_factory=list)
    tenant_jobs: list[TenantJob] = Field(default_factory=list)
    tenant_plans: list[DispatchResult] = Field(default_factory=list)
    tenant_results: list[DispatchResult] = Field(default_factory=list)  # a dispatch of tenantIds
    tenant_errors: list[TenantError] = Field(default_factory=list)
