"""The migrations build exactly the schema the models describe, and can be undone and redone."""

from __future__ import annotations

from tests.support.services import alembic, run_sql


def test_upgrade_check_downgrade_upgrade(migrated_database: str) -> None:
    check = alembic("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    down = alembic("downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert "Running downgrade 0001" in down.stderr

    up = alembic("upgrade", "head")
    assert up.returncode == 0, up.stderr
    again = alembic("check")
    assert again.returncode == 0, again.stdout + again.stderr


def test_check_detects_drift(migrated_database: str) -> None:
    run_sql("DROP INDEX ix_gold_lead_journey_review")
    try:
        drift = alembic("check")
        assert drift.returncode != 0
        assert "ix_gold_lead_journey_review" in drift.stdout + drift.stderr
    finally:
        run_sql(
            "CREATE INDEX ix_gold_lead_journey_review ON gold_lead_journey (tenant_id, next_action_at) "
            "WHERE engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL') AND requires_human_review"
        )
