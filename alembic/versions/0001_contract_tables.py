"""Contract tables (tenants, gold_companies, wa_phone_numbers, gold_lead_journey) and the dispatch outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = "engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')"

# A phone inserted without a queue_slot gets its last two digits while no other phone has them, then the
# last four, then all its digits (unique because the number is). The advisory lock serialises concurrent
# registrations so that two of them cannot both take the same free suffix.
QUEUE_SLOT_FUNCTION = r"""
CREATE FUNCTION wa_phone_numbers_assign_queue_slot() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    digits text := regexp_replace(NEW.phone_number, '\D', '', 'g');
    candidate text;
BEGIN
    IF NEW.queue_slot IS NOT NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('wa_phone_numbers.queue_slot'));
    FOREACH candidate IN ARRAY ARRAY[right(digits, 2), right(digits, 4), digits] LOOP
        IF NOT EXISTS (SELECT 1 FROM wa_phone_numbers WHERE queue_slot = candidate) THEN
            NEW.queue_slot := candidate;
            RETURN NEW;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no free queue slot for phone %', NEW.phone_number USING ERRCODE = 'unique_violation';
END;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("timezone", sa.Text(), server_default="Europe/Bucharest", nullable=False),
        sa.Column("send_window_start", sa.Time(), server_default=sa.text("'09:00'"), nullable=False),
        sa.Column("send_window_end", sa.Time(), server_default=sa.text("'18:00'"), nullable=False),
        sa.Column(
            "send_days",
            postgresql.ARRAY(sa.SmallInteger()),
            server_default=sa.text("'{1,2,3,4,5}'::smallint[]"),
            nullable=False,
        ),
        sa.Column("skip_public_holidays", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("holiday_country", sa.Text(), server_default="RO", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE', 'SUSPENDED')", name=op.f("ck_tenants_status")),
        sa.CheckConstraint(
            "cardinality(send_days) > 0 AND send_days <@ '{1,2,3,4,5,6,7}'::smallint[]",
            name=op.f("ck_tenants_send_days"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "gold_companies",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("denumire", sa.Text(), nullable=False),
        sa.Column("telefon_principal", sa.Text(), nullable=True),
        sa.Column("hlr_reachable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("email_principal", sa.Text(), nullable=True),
        sa.Column("email_status", sa.Text(), nullable=True),
        sa.Column("contact_principal_nume", sa.Text(), nullable=True),
        sa.Column("judet", sa.Text(), nullable=True),
        sa.Column("localitate", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "email_status IS NULL OR email_status IN ('valid', 'invalid', 'risky', 'unknown')",
            name=op.f("ck_gold_companies_email_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_gold_companies_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_companies")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_gold_companies_tenant_id_id")),
    )
    op.create_table(
        "wa_phone_numbers",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("phone_number", sa.Text(), nullable=False),
        sa.Column("queue_slot", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("daily_limit", sa.Integer(), server_default=sa.text("200"), nullable=False),
        sa.Column("total_messages_sent", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE', 'PAUSED', 'BANNED')", name=op.f("ck_wa_phone_numbers_status")),
        sa.CheckConstraint(
            r"phone_number ~ '^\+[1-9][0-9]{6,14}$'", name=op.f("ck_wa_phone_numbers_phone_number_e164")
        ),
        sa.CheckConstraint(
            r"queue_slot ~ '^[A-Za-z0-9_-]{1,32}$'", name=op.f("ck_wa_phone_numbers_queue_slot_format")
        ),
        sa.CheckConstraint("daily_limit >= 0", name=op.f("ck_wa_phone_numbers_daily_limit")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_wa_phone_numbers_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_phone_numbers")),
        sa.UniqueConstraint("phone_number", name=op.f("uq_wa_phone_numbers_phone_number")),
        sa.UniqueConstraint("queue_slot", name=op.f("uq_wa_phone_numbers_queue_slot")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_wa_phone_numbers_tenant_id_id")),
    )
    op.execute(QUEUE_SLOT_FUNCTION)
    op.execute(
        "CREATE TRIGGER wa_phone_numbers_queue_slot BEFORE INSERT ON wa_phone_numbers "
        "FOR EACH ROW EXECUTE FUNCTION wa_phone_numbers_assign_queue_slot()"
    )
    op.create_table(
        "gold_lead_journey",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("engagement_stage", sa.Text(), server_default="COLD", nullable=False),
        sa.Column("priority", sa.Text(), server_default="NORMAL", nullable=False),
        sa.Column("next_action_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requires_human_review", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("assigned_phone_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("whatsapp_opted_out", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("email_opted_out", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("current_sequence_id", sa.Text(), nullable=True),
        sa.Column("sequence_step", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_channel_used", sa.Text(), nullable=True),
        sa.Column("last_dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL', 'WARM_REPLY', 'NEGOTIATION', "
            "'CONVERTED', 'DEAD', 'PAUSED')",
            name=op.f("ck_gold_lead_journey_engagement_stage"),
        ),
        sa.CheckConstraint("priority IN ('HIGH', 'NORMAL', 'LOW')", name=op.f("ck_gold_lead_journey_priority")),
        sa.CheckConstraint("sequence_step >= 0", name=op.f("ck_gold_lead_journey_sequence_step")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "assigned_phone_id"],
            ["wa_phone_numbers.tenant_id", "wa_phone_numbers.id"],
            name=op.f("fk_gold_lead_journey_tenant_id_assigned_phone_id_wa_phone_numbers"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_id"],
            ["gold_companies.tenant_id", "gold_companies.id"],
            name=op.f("fk_gold_lead_journey_tenant_id_lead_id_gold_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_gold_lead_journey_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_lead_journey")),
        sa.UniqueConstraint("tenant_id", "lead_id", name=op.f("uq_gold_lead_journey_tenant_id_lead_id")),
    )
    op.create_index(
        "ix_gold_lead_journey_due",
        "gold_lead_journey",
        ["tenant_id", "priority", "next_action_at"],
        postgresql_where=sa.text(f"{DUE} AND NOT requires_human_review"),
    )
    op.create_index(
        "ix_gold_lead_journey_review",
        "gold_lead_journey",
        ["tenant_id", "next_action_at"],
        postgresql_where=sa.text(f"{DUE} AND requires_human_review"),
    )
    op.create_table(
        "dispatch_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("queue_name", sa.Text(), nullable=False),
        sa.Column("function_name", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_dispatch_outbox_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_outbox")),
        sa.UniqueConstraint("job_id", name=op.f("uq_dispatch_outbox_job_id")),
    )
    op.create_index(op.f("ix_dispatch_outbox_created_at"), "dispatch_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dispatch_outbox_created_at"), table_name="dispatch_outbox")
    op.drop_table("dispatch_outbox")
    op.drop_index("ix_gold_lead_journey_review", table_name="gold_lead_journey")
    op.drop_index("ix_gold_lead_journey_due", table_name="gold_lead_journey")
    op.drop_table("gold_lead_journey")
    op.execute("DROP TRIGGER wa_phone_numbers_queue_slot ON wa_phone_numbers")
    op.execute("DROP FUNCTION wa_phone_numbers_assign_queue_slot()")
    op.drop_table("wa_phone_numbers")
    op.drop_table("gold_companies")
    op.drop_table("tenants")
