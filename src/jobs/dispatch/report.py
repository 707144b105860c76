"""What a dispatch says of its batch besides its result: the metrics, the summary line, its duration."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from loguru import logger

from src.domain.dispatch import Decision
from src.results import Wire
from src.runtime import metrics


def summarised(result: Wire) -> Wire:
    logger.info(
        "dispatched {} leads: {} WhatsApp, {} e-mail, {} waiting for quota, {} for a slot, {} for the "
        "portfolio budget, {} without channel",
        result["totalEligibleLeads"],
        result["dispatchedToWhatsApp"],
        result["dispatchedToEmail"],
        result["skippedQuotaExceeded"],
        result["skippedWindowFull"],
        result["skippedPortfolioLimit"],
        result["skippedNoChannel"],
    )
    return result


def count(decisions: Sequence[Decision], *, held_for_review: int) -> None:
    counted = Counter(
        (d.outcome.value, d.channel.value if d.channel else None, str(d.reason)) for d in decisions
    )
    for (outcome, channel, reason), amount in counted.items():
        metrics.count_lead(outcome, channel, reason, amount)
    metrics.count_leads("SKIPPED_HUMAN_REVIEW", "REQUIRES_HUMAN_REVIEW", held_for_review)


def stamp_processing_time(result: Wire, started: float) -> Wire:
    result["processingTimeMs"] = round((time.perf_counter() - started) * 1000)
    return result
