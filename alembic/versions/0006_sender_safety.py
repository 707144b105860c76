"""WhatsApp sender safety: pacing per phone, warm-up of new numbers, a portfolio budget per tenant.

- tenants.wa_min_gap_s, wa_jitter_s: two messages of one phone are scheduled at least wa_min_gap_s
  apart plus a uniform random 0..wa_jitter_s seconds; 0 and 0 turn pacing off.
- tenants.wa_portfolio_limit: unique recipients the tenant's phones message in any moving 24 h; NULL is
  no limit.
- wa_phone_numbers.warmup_started_on, warmup_initial_limit, warmup_daily_increase: a number warming up
  sends at most initial + increase * (days since the start) a day, never more than daily_limit. NULL
  warmup_started_on is a warmed-up number, which every existing number is: they have been sending.

Every column has a default, so the inserts of other services keep working.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, type, server default, check) -- the same rules as src/db/models.py
COLUMNS = (
    ("tenants", "wa_min_gap_s", sa.Integer(), "60", "wa_min_gap_s >= 0"),
    ("tenants", "wa_jitter_s", sa.Integer(), "60", "wa_jitter_s >= 0"),
    ("tenants", "wa_portfolio_limit", sa.Integer(), None, "wa_portfolio_limit IS NULL OR wa_portfolio_limit > 0"),
    ("wa_phone_numbers", "warmup_started_on", sa.Date(), None, None),
    ("wa_phone_numbers", "warmup_initial_limit", sa.Integer(), "20", "warmup_initial_limit >= 0"),
    ("wa_phone_numbers", "warmup_daily_increase", sa.Integer(), "10", "warmup_daily_increase >= 0"),
)


def upgrade() -> None:
    for table, column, kind, default, check in COLUMNS:
        server_default = sa.text(default) if default is not None else None
        op.add_column(
            table, sa.Column(column, kind, server_default=server_default, nullable=server_default is None)
        )
        if check:
            op.create_check_constraint(op.f(f"ck_{table}_{column}"), table, check)


def downgrade() -> None:
    for table, column, _kind, _default, _check in reversed(COLUMNS):
        op.drop_column(table, column)
