"""Migration 0005: tenants that exist when it runs keep sending (the gate off); new tenants get the
Romanian default; the evidence table refuses to be rewritten."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.services import TEST_DATABASE_URL, alembic, run_sql

OLD_TENANT = "6a1b2c3d-0000-4000-8000-0000000005aa"
NEW_TENANT = "6a1b2c3d-0000-4000-8000-0000000005bb"


def allowed(tenant: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_async_engine(TEST_DATABASE_URL)
        try:
            async with engine.connect() as conn:
                query = text("SELECT allowed_lawful_bases FROM tenants WHERE id = :t")
                value: list[str] = (await conn.execute(query, {"t": tenant})).scalar_one()
                return value
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_existing_tenants_keep_the_gate_off_and_new_ones_get_the_romanian_default(
    migrated_database: str,
) -> None:
    down = alembic("downgrade", "0003")
    assert down.returncode == 0, down.stderr
    try:
        run_sql(f"INSERT INTO tenants (id, name) VALUES ('{OLD_TENANT}', 'Ferma Veche SRL')")
        up = alembic("upgrade", "head")
        assert up.returncode == 0, up.stderr
        run_sql(f"INSERT INTO tenants (id, name) VALUES ('{NEW_TENANT}', 'Ferma Nouă SRL')")

        assert allowed(OLD_TENANT) == []
        assert allowed(NEW_TENANT) == ["CONSENT", "EXISTING_CUSTOMER"]
        with pytest.raises(IntegrityError, match="ck_tenants_allowed_lawful_bases"):
            run_sql(
                f"UPDATE tenants SET allowed_lawful_bases = '{{CONSENT,OPT_IN}}' WHERE id = '{NEW_TENANT}'"
            )
    finally:
        run_sql(f"DELETE FROM tenants WHERE id IN ('{OLD_TENANT}', '{NEW_TENANT}')")
        assert alembic("upgrade", "head").returncode == 0


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ("NULL, 'ALL', 'EMAIL', 'Office@Agro.ro'", "ck_suppressions_value_normalised"),
        ("NULL, 'ALL', 'DOMAIN', 'ro'", "ck_suppressions_value_normalised"),
        ("NULL, 'ALL', 'PHONE', '0722123456'", "ck_suppressions_value_normalised"),
        ("NULL, 'SMS', 'PHONE', '+40722123456'", "ck_suppressions_channel"),
    ],
)
def test_suppression_values_are_stored_normalised_whoever_writes_them(
    migrated_database: str, values: str, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint):
        run_sql(f"INSERT INTO suppressions (tenant_id, channel, kind, value) VALUES ({values})")


def test_one_global_entry_per_value_and_channel(migrated_database: str) -> None:
    entry = (
        "INSERT INTO suppressions (tenant_id, channel, kind, value) VALUES (NULL, 'ALL', 'DOMAIN', 'agro.ro')"
    )
    run_sql(entry)
    try:
        with pytest.raises(IntegrityError, match="uq_suppressions_entry"):
            run_sql(entry)
    finally:
        run_sql("TRUNCATE suppressions")


def test_evidence_rows_are_neither_updated_nor_deleted_outside_the_retention(migrated_database: str) -> None:
    with pytest.raises(DBAPIError, match="append-only: UPDATE refused"):
        run_sql("UPDATE outreach_messages SET basis = NULL")
    with pytest.raises(DBAPIError, match="append-only: DELETE refused"):
        run_sql("DELETE FROM outreach_messages")
    run_sql(
        "DO $$ BEGIN PERFORM set_config('cerniq.evidence_delete', 'retention', true); "
        "DELETE FROM outreach_messages; END $$"
    )
