"""What the statements of the catalogue share: the rows they return and the SQL fragments that must stay
identical to the schema (partial index predicates) and to the domain (available phone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import NamedTuple
from uuid import UUID

from src.domain.allocation import PhoneState
from src.domain.windows import SendingWindow

# The SQL form of domain.allocation.is_available (same tenant is the caller's WHERE clause);
# tests/integration/test_schema.py proves the two agree.
AVAILABLE_PHONE_SQL = "p.status = 'ACTIVE' AND p.is_enabled"
# The due stages and the review hold, exactly as the partial index ix_gold_lead_journey_due states them.
DUE_STAGES_SQL = "j.engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')"
PRIORITIES = ("HIGH", "NORMAL", "LOW")

TENANT_COLUMNS = (
    "id, name, status, timezone, send_window_start, send_window_end, send_days, "
    "skip_public_holidays, holiday_country"
)
_JOURNEY_COLUMNS = (
    "j.id AS journey_id, j.tenant_id, j.lead_id, j.engagement_stage, j.priority, j.next_action_at, "
    "j.requires_human_review, j.assigned_phone_id, j.whatsapp_opted_out, j.email_opted_out, "
    "j.current_sequence_id, j.sequence_step, j.last_channel_used"
)
_COMPANY_COLUMNS = (
    "c.denumire, c.telefon_principal, c.hlr_reachable, c.email_principal, c.email_status, "
    "c.contact_principal_nume, c.judet, c.localitate"
)
_COMPANY_JOIN = "JOIN gold_companies c ON c.tenant_id = j.tenant_id AND c.id = j.lead_id"


@dataclass(frozen=True, slots=True)
class TenantRow:
    id: UUID
    name: str
    status: str
    timezone: str
    send_window_start: time
    send_window_end: time
    send_days: list[int]
    skip_public_holidays: bool
    holiday_country: str

    def window(self) -> SendingWindow:
        return SendingWindow(
            timezone=self.timezone,
            start=self.send_window_start,
            end=self.send_window_end,
            days=frozenset(self.send_days),
            holiday_country=self.holiday_country if self.skip_public_holidays else None,
        )


@dataclass(frozen=True, slots=True)
class LeadRow:
    journey_id: UUID
    tenant_id: UUID
    lead_id: UUID
    engagement_stage: str
    priority: str
    next_action_at: datetime | None
    requires_human_review: bool
    assigned_phone_id: UUID | None
    whatsapp_opted_out: bool
    email_opted_out: bool
    current_sequence_id: str | None
    sequence_step: int
    last_channel_used: str | None
    denumire: str
    telefon_principal: str | None
    hlr_reachable: bool
    email_principal: str | None
    email_status: str | None
    contact_principal_nume: str | None
    judet: str | None
    localitate: str | None


class PhoneRow(NamedTuple):
    """A named tuple rather than a frozen dataclass: a per-lead job builds one per phone of the tenant,
    and a tuple is several times cheaper to make."""

    id: UUID
    tenant_id: UUID
    phone_number: str
    queue_slot: str
    status: str
    is_enabled: bool
    daily_limit: int

    def state(self, used_today: int) -> PhoneState:
        return PhoneState(
            id=self.id,
            tenant_id=self.tenant_id,
            status=self.status,
            is_enabled=self.is_enabled,
            daily_limit=self.daily_limit,
            used_today=used_today,
            queue_slot=self.queue_slot,
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    tenant_id: UUID
    dispatch_job_id: str
    job_count: int
    jobs: bytes


@dataclass(frozen=True, slots=True)
class JourneyUpdate:
    journey_id: UUID
    phone_id: UUID | None  # new sticky phone, or None to keep the current one
    channel: str | None  # the channel dispatched on, or None for a lead that was skipped
    next_action_at: datetime
