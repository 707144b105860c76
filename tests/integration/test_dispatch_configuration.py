"""A tenant's row as PostgreSQL stores it: a window ending at 24:00 works, and a row the service cannot
use fails that tenant's dispatch alone, never the ALL fan-out or its dry run."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.errors import ConfigurationError
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import queued, run_dispatch

EVERY_DAY = {"send_days": [1, 2, 3, 4, 5, 6, 7], "skip_public_holidays": False}


async def tenant_with(factory: Factory, engine: AsyncEngine, **columns: str) -> UUID:
    """A tenant with a phone and two due leads, its columns set as PostgreSQL text ('24:00' included:
    the driver would refuse it as a Python time)."""
    tenant = await factory.tenant(**EVERY_DAY)
    assignments = ", ".join(
        f"{column} = CAST(CAST(:{column} AS text) AS time)"
        if column.startswith("send_window_")
        else f"{column} = :{column}"
        for column in columns
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE tenants SET {assignments} WHERE id = :id"), {"id": tenant, **columns}
        )
    await factory.phone(tenant)
    await factory.leads(tenant, 2)
    return tenant


@pytest.mark.parametrize(
    ("local_time", "utc", "is_open"),
    [
        ("23:30 Wednesday", datetime(2026, 11, 25, 21, 30, tzinfo=UTC), True),
        ("00:00 Thursday", datetime(2026, 11, 25, 22, 0, tzinfo=UTC), False),
        ("08:00 Thursday", datetime(2026, 11, 26, 6, 0, tzinfo=UTC), False),
        ("09:00 Thursday", datetime(2026, 11, 26, 7, 0, tzinfo=UTC), True),
    ],
)
async def test_a_window_ending_at_24_00_is_open_until_midnight(
    deps: Deps,
    factory: Factory,
    engine: AsyncEngine,
    clock: FixedClock,
    local_time: str,
    utc: datetime,
    is_open: bool,
) -> None:
    tenant = await tenant_with(factory, engine, send_window_start="09:00", send_window_end="24:00")
    clock.now = utc

    plan = await run_dispatch(deps, tenant, dryRun=True)
    real = await run_dispatch(deps, tenant)

    for result in (plan, real):
        assert result["outsideSendingWindow"] is not is_open, local_time
        assert result["dispatchedToWhatsApp"] == (2 if is_open else 0)
        assert result["skippedOutsideHours"] == (0 if is_open else 2)
    if not is_open:
        assert real["nextDispatchAt"] == "2026-11-26T07:00:00Z"  # Thursday 09:00 in Bucharest


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"send_window_start": "24:00"}, "send_window_start is 24:00:00: a window starts within its day"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ],
)
async def test_a_row_the_service_cannot_use_fails_its_own_dispatch(
    deps: Deps, factory: Factory, engine: AsyncEngine, columns: dict[str, str], message: str
) -> None:
    tenant = await tenant_with(factory, engine, **columns)
    for dry_run in (True, False):
        with pytest.raises(ConfigurationError, match=message):
            await run_dispatch(deps, tenant, dryRun=dry_run)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"send_window_start": "24:00", "send_window_end": "06:00"},
            "send_window_start is 24:00:00: a window starts within its day (00:00 to 23:59:59)",
        ),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ],
    ids=["start 24:00", "unknown timezone"],
)
async def test_the_fan_out_leaves_out_a_tenant_it_cannot_use_and_sends_the_rest(
    deps: Deps, factory: Factory, engine: AsyncEngine, redis: Redis, columns: dict[str, str], message: str
) -> None:
    office = await tenant_with(factory, engine, send_window_start="00:00", send_window_end="00:00")
    broken = await tenant_with(factory, engine, **columns)

    fanned = await run_dispatch(deps, "ALL", job_id="tick-1")
    planned = await run_dispatch(deps, "ALL", job_id="tick-2", dryRun=True)

    assert [t["tenantId"] for t in fanned["tenantJobs"]] == [str(office)]
    assert await queued(redis, "outreach:orchestrator:dispatch") == [f"dispatch:{office}:tick-1"]
    assert [p["tenantId"] for p in planned["tenantPlans"]] == [str(office)]
    assert planned["dispatchedToWhatsApp"] == 2
    for result in (fanned, planned):
        [error] = result["tenantErrors"]
        assert (error["tenantId"], error["error"]) == (str(broken), "BAD_CONFIGURATION")
        assert error["message"] == f"tenant {broken} has an unusable sending window: {message}"
