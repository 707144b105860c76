"""The forecast's first day against the day itself: what `cerniq-ops forecast` says before the window
opens is what the dispatch jobs then do, tick by tick, with the clock moved through the window."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from redis.asyncio import Redis

from src.contracts import Channel
from src.domain.forecast import forecast
from src.ops.forecast import load
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import Factory
from tests.support.jobs import run_dispatch

# A Wednesday that is no Romanian holiday; the window 09:00-12:00 in Bucharest (UTC+2 in November).
DAY = date(2026, 11, 25)
BEFORE_THE_WINDOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 08:00 local
OPENS = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
CLOSES = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TICK = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("portfolio_limit", "whatsapp"),
    [(500, 96), (80, 80)],
    ids=["phones-bind", "portfolio-binds"],
)
async def test_the_forecast_of_day_one_is_what_dispatch_does_that_day(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock, portfolio_limit: int, whatsapp: int
) -> None:
    # Jitter 0: the forecast counts a jitter at its mean, dispatch draws it per job, so only without
    # jitter is the day's number of pacing slots exact, and the two can be held equal to the message.
    tenant = await factory.tenant(
        send_window_start=time(9),
        send_window_end=time(12),
        wa_min_gap_s=300,  # 3 hours at 5 minutes: 36 slots a phone
        wa_jitter_s=0,
        wa_portfolio_limit=portfolio_limit,
    )
    await factory.phone(tenant, daily_limit=30)  # its limit binds: 30 sends
    await factory.phone(tenant, daily_limit=200, warmup_started_on=DAY - timedelta(days=1))  # day 2: 30
    await factory.phone(tenant, daily_limit=100)  # pacing binds: 36 slots
    await factory.leads(tenant, 110, engagement_stage="CONTACTED_WA")  # WhatsApp first, e-mail allowed
    for _ in range(12):
        await factory.lead(tenant, company={"hlr_reachable": False})  # e-mail only
    for _ in range(3):
        await factory.lead(tenant, whatsapp_opted_out=True, email_opted_out=True)  # no channel

    clock.now = BEFORE_THE_WINDOW
    async with deps.pg.acquire() as conn:
        data = await load(conn, redis, tenant_id=tenant, now=clock())
    [day_one] = forecast(data, now=clock(), days=1).days
    assert day_one.day == DAY
    assert (day_one.opens, day_one.closes) == (OPENS, CLOSES)
    assert day_one.whatsapp_capacity == whatsapp

    sent: Counter[str] = Counter()
    clock.now = OPENS
    while clock.now <= CLOSES:  # every tick of the window, and the first one after it
        result = await run_dispatch(deps, tenant, job_id=f"dispatch-{clock.now:%H%M}")
        sent.update(d["channel"] for d in result["decisions"] if d["outcome"] == "DISPATCHED")
        clock.now += TICK

    assert dict(day_one.dispatched) == {
        Channel.WHATSAPP: sent["WHATSAPP"],
        Channel.EMAIL_COLD: sent["EMAIL_COLD"],
        Channel.EMAIL_WARM: sent["EMAIL_WARM"],
    }
    assert sent["WHATSAPP"] == whatsapp  # the figure, not only the agreement
    still_due = await factory.scalar(
        "SELECT count(*) FROM gold_lead_journey WHERE tenant_id = :t AND last_dispatched_at IS NULL "
        "AND NOT whatsapp_opted_out",
        t=tenant,
    )
    assert day_one.backlog_left == still_due == 110 - whatsapp
