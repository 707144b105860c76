"""tenants: a tenant that skips public holidays names the country whose holidays they are.

An empty holiday_country with skip_public_holidays on used to turn holiday skipping off without a word
(a lead went out on 1 December, a Romanian public holiday). The service now refuses such a tenant as
BAD_CONFIGURATION, and this constraint stops the row from being stored at all.

Rows that break the rule already are not fixed here: the migration fails, naming them. The two possible
fixes mean opposite things (fill in a country, and the tenant stops sending on its holidays; turn
skipping off, and it keeps sending on them), and only the tenant's operator knows which is meant:
guessing 'RO' would stop a foreign tenant on Romanian holidays, and turning skipping off would make the
silent bug permanent. The transaction rolls back, so nothing changes until someone decides.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same rule as src/db/models.py Tenant and src/domain/windows.py SendingWindow.
HOLIDAY_COUNTRY_RULE = "NOT skip_public_holidays OR btrim(holiday_country) <> ''"


def upgrade() -> None:
    bad = op.get_bind().execute(
        sa.text(f"SELECT id, name FROM tenants WHERE NOT ({HOLIDAY_COUNTRY_RULE}) ORDER BY name, id")
    )
    tenants = [f"{row.id} ({row.name})" for row in bad]
    if tenants:
        raise RuntimeError(
            f"{len(tenants)} tenant(s) skip public holidays with an empty holiday_country: "
            f"{', '.join(tenants)}. For each, either set the country "
            "(UPDATE tenants SET holiday_country = 'RO' WHERE id = ...) or stop skipping holidays "
            "(UPDATE tenants SET skip_public_holidays = false WHERE id = ...), then migrate again."
        )
    op.create_check_constraint(op.f("ck_tenants_holiday_country"), "tenants", HOLIDAY_COUNTRY_RULE)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenants_holiday_country"), "tenants", type_="check")
