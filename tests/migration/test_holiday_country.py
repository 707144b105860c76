"""Migration 0003: a tenant that skips public holidays must name its country; rows that do not stop it."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from tests.support.services import alembic, run_sql

BAD_TENANT = "6a1b2c3d-0000-4000-8000-0000000000cc"
INSERT_BAD = (
    "INSERT INTO tenants (id, name, skip_public_holidays, holiday_country) "
    f"VALUES ('{BAD_TENANT}', 'Ferma Fără Țară SRL', true, '')"
)


def test_the_database_refuses_an_empty_country_when_holidays_are_skipped(migrated_database: str) -> None:
    with pytest.raises(IntegrityError, match="ck_tenants_holiday_country"):
        run_sql(INSERT_BAD)
    with pytest.raises(IntegrityError, match="ck_tenants_holiday_country"):
        run_sql(INSERT_BAD.replace("''", "'  '"))
    # Not skipping holidays, a tenant needs no country.
    run_sql(INSERT_BAD.replace("true", "false"))
    run_sql(f"DELETE FROM tenants WHERE id = '{BAD_TENANT}'")


def test_existing_bad_rows_stop_the_upgrade_by_name_and_change_nothing(migrated_database: str) -> None:
    down = alembic("downgrade", "0002")
    assert down.returncode == 0, down.stderr
    try:
        run_sql(INSERT_BAD)
        refused = alembic("upgrade", "head")
        assert refused.returncode != 0
        assert f"{BAD_TENANT} (Ferma Fără Țară SRL)" in refused.stderr
        assert "skip_public_holidays = false" in refused.stderr
        assert alembic("current").stdout.split()[0] == "0002"

        run_sql(f"UPDATE tenants SET holiday_country = 'RO' WHERE id = '{BAD_TENANT}'")
        fixed = alembic("upgrade", "head")
        assert fixed.returncode == 0, fixed.stderr
    finally:
        run_sql(f"DELETE FROM tenants WHERE id = '{BAD_TENANT}'")
        assert alembic("upgrade", "head").returncode == 0
