"""`forecast`: when will a tenant's due backlog have gone out? (src/domain/forecast.py does the sums.)"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from src.config import Config
from src.contracts import Channel
from src.db import queries
from src.domain.forecast import MAX_DAYS, Forecast, ForecastDay, ForecastInput, SenderPhone, forecast
from src.domain.senders import PORTFOLIO_WINDOW, Pace
from src.domain.windows import SendingWindow
from src.jobs.dispatch.evidence import suppressed_in
from src.names import pace_key, portfolio_key, quota_key
from src.ops import argtypes
from src.ops.render import print_json, table
from src.ops.services import OpsError, pg_connection, redis_client
from src.runtime.clock import epoch_ms

BACKLOG_LIMIT = 1_000_000  # due leads read; a backlog larger than this is forecast for its first million
BAR_WIDTH = 40


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "forecast",
        help="when the due backlog goes out, day by day",
        description="For each of the next tenant-local days: the sending window (or why it is closed), "
        "the WhatsApp capacity (the phones' effective limits, warm-up included, capped by the pacing "
        "slots of the window and by the portfolio budget), the messages expected per channel and the due "
        "backlog left at the end of the day; then the day the backlog clears.",
    )
    parser.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    parser.add_argument(
        "--days", type=argtypes.int_between(1, MAX_DAYS), default=14, help=f"1..{MAX_DAYS} (default 14)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    now = datetime.now(UTC)
    async with pg_connection(config) as conn, redis_client(config) as client:
        data = await load(conn, client.redis, tenant_id=args.tenant_id, now=now)
    result = forecast(data, now=now, days=args.days)
    if args.json:
        print_json(as_json(result, args.tenant_id))
    else:
        print(render(result, data.window))
    return 0


async def load(conn: asyncpg.Connection, redis: Redis, *, tenant_id: UUID, now: datetime) -> ForecastInput:
    """The tenant's window and safeguards, its phones with today's counters, and its due backlog."""
    tenant = await queries.load_tenant(conn, tenant_id=tenant_id)
    settings = await queries.sender_settings(conn, tenant_id=tenant_id)
    if tenant is None or settings is None:
        raise OpsError(f"--tenant-id: tenant {tenant_id} not found")
    try:
        window = tenant.window()
        pace = Pace(settings.wa_min_gap_s, settings.wa_jitter_s)
    except ValueError as exc:
        raise OpsError(f"tenant {tenant_id} cannot send: {exc}") from None
    today = window.local_date(now)
    rows = await queries.sender_phones(conn, tenant_id=tenant_id)
    backlog = await queries.due_leads(conn, queries.DueSelection(tenant_id, now, BACKLOG_LIMIT), lock=False)
    keys = [quota_key(row.id, today) for row in rows] + [pace_key(row.id, today) for row in rows]
    counters = await redis.mget(keys) if keys else []
    used, free = counters[: len(rows)], counters[len(rows) :]
    phones = [
        SenderPhone(
            row.state(int(used_today or 0)),
            row.warmup_started_on,
            row.warmup_initial_limit,
            row.warmup_daily_increase,
            datetime.fromtimestamp(int(next_free) / 1000, UTC) if next_free else None,
        )
        for row, used_today, next_free in zip(rows, used, free, strict=True)
    ]
    return ForecastInput(
        tenant_id=tenant_id,
        window=window,
        pace=pace,
        portfolio_limit=settings.wa_portfolio_limit,
        portfolio_scores=await _portfolio_scores(redis, tenant_id, now),
        phones=phones,
        backlog=backlog,
        allowed_bases=frozenset(tenant.allowed_lawful_bases),
        suppressed=await suppressed_in(conn, tenant_id, backlog),
        suspended=tenant.status != "ACTIVE",
    )


async def _portfolio_scores(redis: Redis, tenant_id: UUID, now: datetime) -> list[datetime]:
    """When each recipient of the last 24 h was last messaged (or is scheduled to be)."""
    since = epoch_ms(now - PORTFOLIO_WINDOW)
    found = await redis.zrangebyscore(portfolio_key(tenant_id), f"({since}", "+inf", withscores=True)
    return [datetime.fromtimestamp(score / 1000, UTC) for _, score in found]


def as_json(result: Forecast, tenant_id: UUID) -> dict[str, object]:
    return {
        "tenantId": str(tenant_id),
        "forecastAt": result.now.isoformat(),
        "backlog": result.backlog,
        "noChannel": result.no_channel,
        "days": [
            {
                "date": day.day.isoformat(),
                "opens": day.opens.isoformat() if day.opens and not day.closed else None,
                "closes": day.closes.isoformat() if day.closes and not day.closed else None,
                "closed": day.closed,
                "whatsappCapacity": day.whatsapp_capacity,
                "dispatched": {channel.value: count for channel, count in day.dispatched.items()},
                "backlogLeft": day.backlog_left,
            }
            for day in result.days
        ],
        "clearsOn": result.clears_on.isoformat() if result.clears_on else None,
    }


def _hours(day: ForecastDay, window: SendingWindow) -> str:
    if day.closed or day.opens is None or day.closes is None:
        return f"closed ({day.closed})"
    return f"{day.opens.astimezone(window.tz):%H:%M}-{day.closes.astimezone(window.tz):%H:%M}"


def _bar(day: ForecastDay, most: int) -> str:
    if day.closed:
        return "·"
    cells = round(BAR_WIDTH * day.total / most) if most else 0
    return "█" * cells if cells or not day.total else "▏"


def render(result: Forecast, window: SendingWindow) -> str:
    most = max((day.total for day in result.days), default=0)
    rows = [
        (
            f"{day.day:%a %Y-%m-%d}",
            _hours(day, window),
            day.whatsapp_capacity,
            day.dispatched[Channel.WHATSAPP],
            day.dispatched[Channel.EMAIL_COLD],
            day.dispatched[Channel.EMAIL_WARM],
            day.backlog_left,
        )
        for day in result.days
    ]
    chart = [
        f"  {day.day:%a %d %b}  {_bar(day, most):<{BAR_WIDTH}} {day.total:>6} sent {day.backlog_left:>8} left"
        for day in result.days
    ]
    return "\n".join(
        [
            f"Forecast at {result.now:%Y-%m-%d %H:%M %Z}, days in {window.timezone}: "
            f"{result.backlog} due leads",
            "",
            table(["DAY", "WINDOW", "WA CAPACITY", "WHATSAPP", "EMAIL COLD", "EMAIL WARM", "LEFT"], rows),
            "",
            "Messages a day (· closed)",
            *chart,
            "",
            _verdict(result),
        ]
    )


def _verdict(result: Forecast) -> str:
    unsendable = (
        f" {result.no_channel} of them have no allowed channel: dispatch rechecks them, and none goes out."
        if result.no_channel
        else ""
    )
    if result.clears_on is not None:
        return f"The backlog clears on {result.clears_on:%a %Y-%m-%d}.{unsendable}"
    left = result.days[-1].backlog_left
    return f"The backlog does not clear within {len(result.days)} days: {left} left.{unsendable}"
