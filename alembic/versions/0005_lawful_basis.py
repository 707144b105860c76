"""Lawful basis, objections, suppression lists and the evidence of every message (issue 11).

- gold_lead_journey: per channel the lawful basis and its evidence (when, where), and objected_at. An
  objected lead is never due again: the dispatcher's partial index says so, so objections do not pile
  up at the head of the due range that every tick reads.
- tenants.allowed_lawful_bases: the bases a channel may rest on. New tenants get the Romanian default
  (CONSENT, EXISTING_CUSTOMER); tenants that exist when this runs get the empty list, which turns the
  gate off, so that none of them stops sending at deploy time for want of bases nobody has imported yet.
  The README ("Lawful basis") says how an operator moves one to the default.
- suppressions: addresses, domains and numbers not to contact, per tenant or for every tenant.
- outreach_messages: one row per message put on an output queue, append-only (a trigger refuses UPDATE,
  and DELETE outside the retention delete).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BASES = "('CONSENT', 'EXISTING_CUSTOMER', 'LEGITIMATE_INTEREST')"
ROMANIAN_DEFAULT = sa.text("'{CONSENT,EXISTING_CUSTOMER}'::text[]")
DUE_BEFORE = "engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL') AND NOT requires_human_review"
DUE_AFTER = f"{DUE_BEFORE} AND objected_at IS NULL"
# src/db/models.py SUPPRESSION_VALUE_RULE
VALUE_RULE = (
    "CASE kind "
    r"WHEN 'PHONE' THEN value ~ '^\+[1-9][0-9]{6,14}$' "
    r"WHEN 'EMAIL' THEN value = lower(value) AND value ~ '^[^@\s]+@[^@\s]+$' "
    r"ELSE value = lower(value) AND value ~ '^[^@\s.]+(\.[^@\s.]+)+$' END"
)
JOURNEY_COLUMNS = (
    ("email_lawful_basis", sa.Text()),
    ("email_basis_at", sa.DateTime(timezone=True)),
    ("email_basis_source", sa.Text()),
    ("whatsapp_lawful_basis", sa.Text()),
    ("whatsapp_basis_at", sa.DateTime(timezone=True)),
    ("whatsapp_basis_source", sa.Text()),
    ("objected_at", sa.DateTime(timezone=True)),
)
# A DELETE passes only in a transaction that names itself the retention delete (or a demo reset) with
# SET LOCAL cerniq.evidence_delete: a guard against a mistaken statement, not against a superuser.
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION outreach_messages_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND coalesce(current_setting('cerniq.evidence_delete', true), '') IN ('retention', 'demo-reset') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'outreach_messages is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'rows leave only by the retention delete (MESSAGE_RETENTION_DAYS)';
END;
$$;
"""


def upgrade() -> None:
    _tenants()
    _journeys()
    _suppressions()
    _outreach_messages()


def _tenants() -> None:
    # Existing tenants get the empty list (the gate off) as the column is added; new ones the default.
    op.add_column(
        "tenants",
        sa.Column(
            "allowed_lawful_bases", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.alter_column("tenants", "allowed_lawful_bases", server_default=ROMANIAN_DEFAULT)
    op.create_check_constraint(
        op.f("ck_tenants_allowed_lawful_bases"),
        "tenants",
        "allowed_lawful_bases <@ ARRAY['CONSENT', 'EXISTING_CUSTOMER', 'LEGITIMATE_INTEREST']::text[]",
    )


def _journeys() -> None:
    for name, kind in JOURNEY_COLUMNS:
        op.add_column("gold_lead_journey", sa.Column(name, kind, nullable=True))
    for column in ("email_lawful_basis", "whatsapp_lawful_basis"):
        op.create_check_constraint(
            op.f(f"ck_gold_lead_journey_{column}"), "gold_lead_journey", f"{column} IS NULL OR {column} IN {BASES}"
        )
    _due_index(DUE_AFTER)


def _due_index(predicate: str) -> None:
    op.drop_index("ix_gold_lead_journey_due", table_name="gold_lead_journey")
    op.create_index(
        "ix_gold_lead_journey_due",
        "gold_lead_journey",
        ["tenant_id", "priority", "next_action_at"],
        postgresql_where=sa.text(predicate),
    )


def _suppressions() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint("channel IN ('EMAIL', 'WHATSAPP', 'ALL')", name=op.f("ck_suppressions_channel")),
        sa.CheckConstraint("kind IN ('EMAIL', 'DOMAIN', 'PHONE')", name=op.f("ck_suppressions_kind")),
        sa.CheckConstraint(VALUE_RULE, name=op.f("ck_suppressions_value_normalised")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_suppressions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    op.create_index(
        "uq_suppressions_entry",
        "suppressions",
        ["kind", "value", "channel", "tenant_id"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )


def _outreach_messages() -> None:
    op.create_table(
        "outreach_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("phone_id", sa.Uuid(), nullable=True),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=True),
        sa.Column("basis_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("basis_source", sa.Text(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_messages")),
    )
    op.create_index("ix_outreach_messages_lead", "outreach_messages", ["tenant_id", "lead_id"])
    op.create_index(
        "ix_outreach_messages_created_at", "outreach_messages", ["created_at"], postgresql_using="brin"
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER outreach_messages_append_only BEFORE UPDATE OR DELETE ON outreach_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION outreach_messages_append_only()"
    )


def downgrade() -> None:
    op.drop_table("outreach_messages")
    op.execute("DROP FUNCTION outreach_messages_append_only()")
    op.drop_index("uq_suppressions_entry", table_name="suppressions")
    op.drop_table("suppressions")
    _due_index(DUE_BEFORE)
    for column in ("email_lawful_basis", "whatsapp_lawful_basis"):
        op.drop_constraint(op.f(f"ck_gold_lead_journey_{column}"), "gold_lead_journey", type_="check")
    for name, _ in JOURNEY_COLUMNS:
        op.drop_column("gold_lead_journey", name)
    op.drop_constraint(op.f("ck_tenants_allowed_lawful_bases"), "tenants", type_="check")
    op.drop_column("tenants", "allowed_lawful_bases")
