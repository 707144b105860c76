"""The rows the statements return, each decoded by column name.

A row type's fields are its columns: every statement names its columns as the fields (with AS where the
column is called otherwise), and `decode` reads each field by name. A column added to a SELECT, or one
missing from it, can never shift another's value: a missing one is a KeyError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, NamedTuple, Protocol, TypeVar, cast
from uuid import UUID

from src.domain.allocation import PhoneState
from src.domain.channels import LeadContact
from src.domain.senders import Pace, effective_daily_limit
from src.domain.windows import SendingWindow, window_bound

R = TypeVar("R")


@cache
def field_names(row_type: type) -> tuple[str, ...]:
    """The columns of a row type: its fields, in order (a dataclass or a NamedTuple)."""
    named: tuple[str, ...] | None = getattr(row_type, "_fields", None)
    if named is not None:
        return named
    return tuple(field.name for field in dataclasses.fields(row_type))


def columns(row_type: type, alias: str = "") -> str:
    """The SELECT list of a row type whose fields are the columns of one table (`alias.name, ...`)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in field_names(row_type))


class Record(Protocol):
    """A row readable by column name: an asyncpg Record, or a SQLAlchemy Row's `_mapping`."""

    def __getitem__(self, key: Any, /) -> Any: ...


def decode(row_type: type[R], record: Record) -> R:
    """One row, by column name."""
    names = field_names(cast(type, row_type))
    return row_type(**{name: record[name] for name in names})


def arrays(items: Sequence[Any], *names: str) -> list[list[Any]]:
    """One array per attribute name, over the items: a batch as a statement's `unnest` takes it."""
    return [[getattr(item, name) for item in items] for name in names]


@dataclass(frozen=True, slots=True)
class TenantRow:
    """A tenant as `TENANT_COLUMNS` reads it. Decoding cannot fail on any row the schema admits; what
    the service cannot use (an unknown timezone, a 24:00 start) is refused by `window()`, per tenant."""

    id: UUID
    name: str
    status: str
    timezone: str
    send_window_start: str  # as text: see TENANT_COLUMNS
    send_window_end: str
    send_days: list[int]
    skip_public_holidays: bool
    holiday_country: str
    allowed_lawful_bases: list[str]  # empty: the basis gate is off (src/domain/lawful.py)
    wa_min_gap_s: int
    wa_jitter_s: int
    wa_portfolio_limit: int | None  # None: no portfolio budget

    def pace(self) -> Pace:
        return Pace(self.wa_min_gap_s, self.wa_jitter_s)

    def window(self) -> SendingWindow:
        """The tenant's sending window; ValueError naming the field it cannot use."""
        return SendingWindow(
            timezone=self.timezone,
            start=window_bound(self.send_window_start, "send_window_start", end=False),
            end=window_bound(self.send_window_end, "send_window_end", end=True),
            days=frozenset(self.send_days),
            holiday_country=self.holiday_country if self.skip_public_holidays else None,
        )


# The window's bounds are read as text: PostgreSQL's time type stores '24:00', which asyncpg cannot
# decode into a datetime.time ("hour must be in 0..23"), and one such row failed the whole statement,
# and with it the dispatch of every tenant.
def tenant_columns(alias: str = "", prefix: str = "") -> str:
    """The SELECT list of a TenantRow: from table `alias`, each column named `prefix` + field."""
    table = f"{alias}." if alias else ""
    return ", ".join(
        f"{table}{name}{'::text' if name.startswith('send_window_') else ''} AS {prefix}{name}"
        for name in field_names(TenantRow)
    )


TENANT_COLUMNS = tenant_columns()


@dataclass(frozen=True, slots=True)
class BasesColumns:
    """A journey's lawful bases per channel, their evidence, and its objection: the columns of issue 11,
    which the row types that carry them share."""

    whatsapp_lawful_basis: str | None
    whatsapp_basis_at: datetime | None
    whatsapp_basis_source: str | None
    email_lawful_basis: str | None
    email_basis_at: datetime | None
    email_basis_source: str | None
    objected_at: datetime | None


# LeadContact's fields and the columns they are read from.
_CONTACT_COLUMNS = (
    ("stage", "engagement_stage"),
    ("phone", "telefon_principal"),
    ("hlr_reachable", "hlr_reachable"),
    ("email", "email_principal"),
    ("email_status", "email_status"),
    ("whatsapp_opted_out", "whatsapp_opted_out"),
    ("email_opted_out", "email_opted_out"),
    ("last_channel_used", "last_channel_used"),
)


def lead_contact(row: Record) -> LeadContact:
    """The channel rule's view of a lead, from a row that selects the journey's and company's columns."""
    return LeadContact(**{field: row[column] for field, column in _CONTACT_COLUMNS})


# The company's and the journey's own columns, which a lead as the ops tool reads it (LeadRow) and a
# lead as the seed writes it (ops.NewLead) both carry. Without slots, so that a row type can take both.
@dataclass(frozen=True)
class CompanyColumns:
    denumire: str
    telefon_principal: str | None
    hlr_reachable: bool
    email_principal: str | None
    email_status: str | None
    contact_principal_nume: str | None
    judet: str | None
    localitate: str | None


@dataclass(frozen=True)
class JourneyColumns:
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


@dataclass(frozen=True)
class LeadRow(JourneyColumns, CompanyColumns):
    """A journey and its company (`LEAD_COLUMNS` over `gold_lead_journey j` joined to `gold_companies c`)."""

    journey_id: UUID
    tenant_id: UUID
    lead_id: UUID
    objected_at: datetime | None


LEAD_COLUMNS = (
    "j.id AS journey_id, j.tenant_id, j.lead_id, j.engagement_stage, j.priority, j.next_action_at, "
    "j.requires_human_review, j.assigned_phone_id, j.whatsapp_opted_out, j.email_opted_out, "
    "j.current_sequence_id, j.sequence_step, j.last_channel_used, c.denumire, c.telefon_principal, "
    "c.hlr_reachable, c.email_principal, c.email_status, c.contact_principal_nume, c.judet, c.localitate, "
    "j.objected_at"
)


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
    warmup_started_on: date | None
    warmup_initial_limit: int
    warmup_daily_increase: int

    def limit_on(self, day: date) -> int:
        """The phone's effective daily limit on tenant-local date `day` (warm-up included)."""
        return effective_daily_limit(
            self.daily_limit,
            self.warmup_started_on,
            self.warmup_initial_limit,
            self.warmup_daily_increase,
            day,
        )

    def state(self, used_today: int, day: date) -> PhoneState:
        """The phone as the allocator sees it on `day`: its limit is the effective one."""
        # Positional, and the warm-up's arithmetic only for a number in warm-up: a job makes one of these
        # per phone of its tenant.
        limit = self.daily_limit if self.warmup_started_on is None else self.limit_on(day)
        return PhoneState(
            self.id, self.tenant_id, self.status, self.is_enabled, limit, used_today, self.queue_slot
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    tenant_id: UUID
    dispatch_job_id: str
    job_count: int
    jobs: bytes


@dataclass(frozen=True, slots=True)
class OutboxWaiting:
    """An outbox row as a relay first looks at it, unlocked: whose it is, and how old."""

    id: int
    dispatch_job_id: str
    past_grace: bool  # older than OUTBOX_RELAY_GRACE_S by the database's clock


@dataclass(frozen=True, slots=True)
class JourneyUpdate:
    journey_id: UUID
    phone_id: UUID | None  # new sticky phone, or None to keep the current one
    channel: str | None  # the channel dispatched on, or None for a lead that was skipped
    next_action_at: datetime
