"""The contract tables (docs/contract.md §2) and the dispatch outbox, as SQLAlchemy 2.0 models.

Alembic builds the schema from alembic/versions; the migration test proves these models and the
migrations agree (`alembic check`). Other services insert into these tables, so every added column
has a server default.
"""

from __future__ import annotations

from datetime import date, datetime, time
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DUE_STAGES = ("COLD", "CONTACTED_WA", "CONTACTED_EMAIL")
STAGES = (*DUE_STAGES, "WARM_REPLY", "NEGOTIATION", "CONVERTED", "DEAD", "PAUSED")
LAWFUL_BASES = ("CONSENT", "EXISTING_CUSTOMER", "LEGITIMATE_INTEREST")  # src/domain/lawful.py
# The due lead: the partial index of the dispatcher's selection states it, and so does its SQL
# (src/db/queries/common.py). An objection (GDPR art. 21) takes a lead out for good.
DUE_LEAD_PREDICATE = (
    "engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL') AND NOT requires_human_review "
    "AND objected_at IS NULL"
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _uuid_pk() -> Mapped[UUID]:
    return mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(_one_of("status", ("ACTIVE", "SUSPENDED")), name="status"),
        CheckConstraint(
            "cardinality(send_days) > 0 AND send_days <@ '{1,2,3,4,5,6,7}'::smallint[]", name="send_days"
        ),
        # An empty country used to turn holiday skipping off silently (migration 0003).
        CheckConstraint("NOT skip_public_holidays OR btrim(holiday_country) <> ''", name="holiday_country"),
        CheckConstraint(
            f"allowed_lawful_bases <@ ARRAY[{', '.join(repr(b) for b in LAWFUL_BASES)}]::text[]",
            name="allowed_lawful_bases",
        ),
        CheckConstraint("wa_min_gap_s >= 0", name="wa_min_gap_s"),
        CheckConstraint("wa_jitter_s >= 0", name="wa_jitter_s"),
        CheckConstraint("wa_portfolio_limit IS NULL OR wa_portfolio_limit > 0", name="wa_portfolio_limit"),
    )

    id: Mapped[UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    timezone: Mapped[str] = mapped_column(Text, server_default="Europe/Bucharest")
    send_window_start: Mapped[time] = mapped_column(Time, server_default=text("'09:00'"))
    send_window_end: Mapped[time] = mapped_column(Time, server_default=text("'18:00'"))
    send_days: Mapped[list[int]] = mapped_column(
        ARRAY(SmallInteger), server_default=text("'{1,2,3,4,5}'::smallint[]")
    )
    skip_public_holidays: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    holiday_country: Mapped[str] = mapped_column(Text, server_default="RO")
    # The bases a lead's channel may rest on; empty turns the gate off (migration 0005 gave existing
    # tenants that, new ones get the Romanian default).
    allowed_lawful_bases: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{CONSENT,EXISTING_CUSTOMER}'::text[]")
    )
    # WhatsApp pacing and portfolio budget (migration 0006, src/domain/senders.py): two messages of one
    # phone at least wa_min_gap_s + U(0, wa_jitter_s) apart (0 and 0: no pacing); unique recipients of all
    # the tenant's phones in a moving 24 h (NULL: no limit).
    wa_min_gap_s: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    wa_jitter_s: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    wa_portfolio_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class GoldCompany(Base):
    __tablename__ = "gold_companies"
    __table_args__ = (
        # Lets the journey reference (tenant_id, lead_id), so a journey can never point at another
        # tenant's company.
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint(
            "email_status IS NULL OR " + _one_of("email_status", ("valid", "invalid", "risky", "unknown")),
            name="email_status",
        ),
    )

    id: Mapped[UUID] = _uuid_pk()
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id"))
    denumire: Mapped[str] = mapped_column(Text)
    telefon_principal: Mapped[str | None] = mapped_column(Text)
    hlr_reachable: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    email_principal: Mapped[str | None] = mapped_column(Text)
    email_status: Mapped[str | None] = mapped_column(Text)
    contact_principal_nume: Mapped[str | None] = mapped_column(Text)
    judet: Mapped[str | None] = mapped_column(Text)
    localitate: Mapped[str | None] = mapped_column(Text)


class WaPhoneNumber(Base):
    __tablename__ = "wa_phone_numbers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint(_one_of("status", ("ACTIVE", "PAUSED", "BANNED")), name="status"),
        CheckConstraint(r"phone_number ~ '^\+[1-9][0-9]{6,14}$'", name="phone_number_e164"),
        CheckConstraint(r"queue_slot ~ '^[A-Za-z0-9_-]{1,32}$'", name="queue_slot_format"),
        CheckConstraint("daily_limit >= 0", name="daily_limit"),
        CheckConstraint("warmup_initial_limit >= 0", name="warmup_initial_limit"),
        CheckConstraint("warmup_daily_increase >= 0", name="warmup_daily_increase"),
    )

    id: Mapped[UUID] = _uuid_pk()
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id"))
    phone_number: Mapped[str] = mapped_column(Text, unique=True)
    # Filled by the trigger wa_phone_numbers_queue_slot when an insert leaves it NULL: the number's
    # last two digits while they are free, otherwise a longer suffix of the number.
    queue_slot: Mapped[str] = mapped_column(Text, unique=True)
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    is_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    daily_limit: Mapped[int] = mapped_column(Integer, server_default=text("200"))
    total_messages_sent: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Warm-up (migration 0006, src/domain/senders.py effective_daily_limit): NULL is a warmed-up number.
    warmup_started_on: Mapped[date | None] = mapped_column(Date)
    warmup_initial_limit: Mapped[int] = mapped_column(Integer, server_default=text("20"))
    warmup_daily_increase: Mapped[int] = mapped_column(Integer, server_default=text("10"))


class GoldLeadJourney(Base):
    __tablename__ = "gold_lead_journey"
    __table_args__ = (
        UniqueConstraint("tenant_id", "lead_id"),
        ForeignKeyConstraint(["tenant_id", "lead_id"], ["gold_companies.tenant_id", "gold_companies.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "assigned_phone_id"], ["wa_phone_numbers.tenant_id", "wa_phone_numbers.id"]
        ),
        CheckConstraint(_one_of("engagement_stage", STAGES), name="engagement_stage"),
        CheckConstraint(_one_of("priority", ("HIGH", "NORMAL", "LOW")), name="priority"),
        CheckConstraint("sequence_step >= 0", name="sequence_step"),
        CheckConstraint(
            f"email_lawful_basis IS NULL OR {_one_of('email_lawful_basis', LAWFUL_BASES)}",
            name="email_lawful_basis",
        ),
        CheckConstraint(
            f"whatsapp_lawful_basis IS NULL OR {_one_of('whatsapp_lawful_basis', LAWFUL_BASES)}",
            name="whatsapp_lawful_basis",
        ),
        # The dispatcher's selection: one range scan per (priority, past/null) branch, in order.
        Index(
            "ix_gold_lead_journey_due",
            "tenant_id",
            "priority",
            "next_action_at",
            postgresql_where=text(DUE_LEAD_PREDICATE),
        ),
        # Counting the due leads held for review (skippedHumanReview) without touching the rest.
        Index(
            "ix_gold_lead_journey_review",
            "tenant_id",
            "next_action_at",
            postgresql_where=text(f"{_one_of('engagement_stage', DUE_STAGES)} AND requires_human_review"),
        ),
    )

    id: Mapped[UUID] = _uuid_pk()
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id"))
    lead_id: Mapped[UUID]
    engagement_stage: Mapped[str] = mapped_column(Text, server_default="COLD")
    priority: Mapped[str] = mapped_column(Text, server_default="NORMAL")
    next_action_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requires_human_review: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    assigned_phone_id: Mapped[UUID | None]
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    whatsapp_opted_out: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    email_opted_out: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    current_sequence_id: Mapped[str | None] = mapped_column(Text)
    sequence_step: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_channel_used: Mapped[str | None] = mapped_column(Text)
    last_dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lawful basis per channel and its evidence: when, and where it was given (a form URL, a
    # contract number, a call reference); an objection, for good, on every channel.
    email_lawful_basis: Mapped[str | None] = mapped_column(Text)
    email_basis_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_basis_source: Mapped[str | None] = mapped_column(Text)
    whatsapp_lawful_basis: Mapped[str | None] = mapped_column(Text)
    whatsapp_basis_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    whatsapp_basis_source: Mapped[str | None] = mapped_column(Text)
    objected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DispatchOutbox(Base):
    """A committed dispatch batch whose jobs have not yet been seen enqueued (the transactional outbox):
    one row per batch, its jobs in the form the bulk-enqueue script takes (src/redis_io/job_writer.py)."""

    __tablename__ = "dispatch_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[UUID]
    dispatch_job_id: Mapped[str] = mapped_column(Text)
    job_count: Mapped[int] = mapped_column(Integer)
    # Stored out of line without compression (STORAGE EXTERNAL, set by migration 0002).
    jobs: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), index=True
    )


# The same shapes as src/domain/suppression.py: values are stored normalised, whoever writes them.
SUPPRESSION_VALUE_RULE = (
    "CASE kind "
    r"WHEN 'PHONE' THEN value ~ '^\+[1-9][0-9]{6,14}$' "
    r"WHEN 'EMAIL' THEN value = lower(value) AND value ~ '^[^@\s]+@[^@\s]+$' "
    r"ELSE value = lower(value) AND value ~ '^[^@\s.]+(\.[^@\s.]+)+$' END"
)


class Suppression(Base):
    """An address, a domain (and the domains under it) or a number that a channel must not reach: one
    tenant's entry, or every tenant's when tenant_id is NULL."""

    __tablename__ = "suppressions"
    __table_args__ = (
        CheckConstraint(_one_of("channel", ("EMAIL", "WHATSAPP", "ALL")), name="channel"),
        CheckConstraint(_one_of("kind", ("EMAIL", "DOMAIN", "PHONE")), name="kind"),
        CheckConstraint(SUPPRESSION_VALUE_RULE, name="value_normalised"),
        # One entry per (kind, value, channel, tenant), a global one (NULL tenant) included; kind and value
        # first, so that it also serves dispatch's lookup of a batch's keys.
        Index(
            "uq_suppressions_entry",
            "kind",
            "value",
            "channel",
            "tenant_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
    created_by: Mapped[str | None] = mapped_column(Text)


class OutreachMessage(Base):
    """One row per message put on an output queue, with the basis it went out on (GDPR art. 5(2)).

    Append-only: a trigger (migration 0005) refuses UPDATE, and DELETE unless the transaction says it is
    the retention delete (src/db/queries/evidence.py). No foreign key: the evidence outlives the rows it
    speaks of."""

    __tablename__ = "outreach_messages"
    __table_args__ = (
        Index("ix_outreach_messages_lead", "tenant_id", "lead_id"),
        # The retention delete reads the oldest rows; rows arrive in created_at order, which BRIN suits.
        Index("ix_outreach_messages_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[UUID]
    lead_id: Mapped[UUID]
    channel: Mapped[str] = mapped_column(Text)
    phone_id: Mapped[UUID | None]
    queue: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str] = mapped_column(Text)
    basis: Mapped[str | None] = mapped_column(Text)
    basis_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    basis_source: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
