"""dispatch_outbox: one row per dispatch batch instead of one per job.

A batch's jobs are written as one value: the payload the bulk-enqueue script takes (src/outbound.py),
stored out of line without compression. Writing and deleting one row per batch costs PostgreSQL a few
milliseconds where a thousand rows, each with its indexes and a foreign key, cost about thirty.
Rows waiting in the old table are carried over, one batch row each, and back on downgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One job as the bulk-enqueue script takes it: [job id, queue, the job as arq stores it]
# (src/outbound.py arq_job_bytes_from_json: function, one positional argument, first try, enqueue time).
OLD_ROW_AS_BATCH = """
    convert_to(json_build_array(json_build_array(
        job_id,
        queue_name,
        json_build_object(
            't', NULL, 'f', function_name, 'a', json_build_array(payload), 'k', '{}'::json,
            'et', (extract(epoch FROM created_at) * 1000)::bigint
        )::text
    ))::text, 'UTF8')
"""


def upgrade() -> None:
    op.rename_table("dispatch_outbox", "dispatch_outbox_jobs")
    op.execute("ALTER INDEX ix_dispatch_outbox_created_at RENAME TO ix_dispatch_outbox_jobs_created_at")
    op.execute("ALTER TABLE dispatch_outbox_jobs RENAME CONSTRAINT pk_dispatch_outbox TO pk_dispatch_outbox_jobs")
    op.create_table(
        "dispatch_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("dispatch_job_id", sa.Text(), nullable=False),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_outbox")),
    )
    op.create_index(op.f("ix_dispatch_outbox_created_at"), "dispatch_outbox", ["created_at"])
    op.execute("ALTER TABLE dispatch_outbox ALTER COLUMN jobs SET STORAGE EXTERNAL")
    op.execute(
        f"""
        INSERT INTO dispatch_outbox (tenant_id, dispatch_job_id, job_count, jobs, created_at)
        SELECT tenant_id, 'migrated:' || job_id, 1, {OLD_ROW_AS_BATCH}, created_at
        FROM dispatch_outbox_jobs ORDER BY id
        """
    )
    op.drop_table("dispatch_outbox_jobs")


def downgrade() -> None:
    op.create_table(
        "dispatch_outbox_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("queue_name", sa.Text(), nullable=False),
        sa.Column("function_name", sa.Text(), nullable=False),
        sa.Column("payload", sa.dialects.postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_dispatch_outbox_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("id", name="pk_dispatch_outbox_jobs"),
        sa.UniqueConstraint("job_id", name="uq_dispatch_outbox_job_id"),
    )
    op.execute(
        """
        INSERT INTO dispatch_outbox_jobs (tenant_id, lead_id, job_id, queue_name, function_name, payload,
                                          created_at)
        SELECT b.tenant_id, ((job.value ->> 2)::jsonb -> 'a' -> 0 ->> 'leadId')::uuid, job.value ->> 0,
               job.value ->> 1, (job.value ->> 2)::jsonb ->> 'f', (job.value ->> 2)::jsonb -> 'a' -> 0,
               b.created_at
        FROM dispatch_outbox b, jsonb_array_elements(convert_from(b.jobs, 'UTF8')::jsonb) AS job(value)
        ON CONFLICT (job_id) DO NOTHING
        """
    )
    op.drop_index(op.f("ix_dispatch_outbox_created_at"), table_name="dispatch_outbox")
    op.drop_table("dispatch_outbox")
    op.rename_table("dispatch_outbox_jobs", "dispatch_outbox")
    op.execute("ALTER TABLE dispatch_outbox RENAME CONSTRAINT pk_dispatch_outbox_jobs TO pk_dispatch_outbox")
    op.create_index("ix_dispatch_outbox_created_at", "dispatch_outbox", ["created_at"])
