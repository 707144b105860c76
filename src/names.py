"""Every queue name, function name, job id and Redis key of the service, built here and nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID


class Queue(StrEnum):
    DISPATCH = "outreach:orchestrator:dispatch"
    ROUTER = "outreach:orchestrator:router"
    ALLOCATOR = "outreach:phone:allocator"
    SELECTOR = "outreach:channel:selector"


class Function(StrEnum):
    DISPATCH = "dispatch"
    ROUTE = "route"
    ALLOCATE_PHONE = "allocate_phone"
    SELECT_CHANNEL = "select_channel"


QUEUE_OF: dict[Function, Queue] = {
    Function.DISPATCH: Queue.DISPATCH,
    Function.ROUTE: Queue.ROUTER,
    Function.ALLOCATE_PHONE: Queue.ALLOCATOR,
    Function.SELECT_CHANNEL: Queue.SELECTOR,
}

# The cron entry that starts `dispatch` for every active tenant.
DISPATCH_CRON_NAME = "cron:dispatch"

# Output queues read by the downstream senders.
EMAIL_COLD_QUEUE = "q:email:cold"
EMAIL_WARM_QUEUE = "q:email:warm"
SEND_WHATSAPP_INITIAL = "send-whatsapp-initial"
SEND_WHATSAPP_FOLLOWUP = "send-whatsapp-followup"
SEND_EMAIL_COLD = "send-email-cold"
SEND_EMAIL_WARM = "send-email-warm"

# arq's own key prefixes (arq.constants, pinned version) that the bulk enqueue script writes.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"
HEALTH_CHECK_SUFFIX = ":health-check"

# Health key of the all-in-one process, written while all four queue workers run.
ALL_QUEUES_HEALTH_KEY = "outreach:orchestrator:all" + HEALTH_CHECK_SUFFIX
# Kept in Redis by the worker processes, without expiry: gone means Redis lost its data
# (src/runtime/redis_watch.py).
REDIS_MARKER_KEY = "outreach:orchestrator:redis-marker"
# Written before each WAIT for replicas, so that the WAIT covers every earlier write of the primary
# (src/redis_io/replicas.py); its value means nothing.
REPLICA_FENCE_KEY = "outreach:orchestrator:replica-fence"


def wake_channel(queue: str) -> str:
    """The pub/sub channel on which an enqueuer wakes the idle workers of `queue` (src/runtime/wakeup.py)."""
    return queue + ":wake"


def health_key(queue: str) -> str:
    return queue + HEALTH_CHECK_SUFFIX


def whatsapp_queue(slot: str, *, followup: bool = False) -> str:
    return f"q:wa:phone_{slot}:followup" if followup else f"q:wa:phone_{slot}"


def quota_key(phone_id: UUID | str, quota_date: date) -> str:
    """The daily WhatsApp counter of one phone (docs/contract.md §2): reservations made that day."""
    return f"quota:wa:{phone_id}:{quota_date.isoformat()}"


def quota_reservations_key(tenant_id: UUID | str, quota_date: date) -> str:
    """Hash job id -> phone id: makes a reservation count once per job id, whatever the retries."""
    return f"quota:wa:reservations:{tenant_id}:{quota_date.isoformat()}"


def pace_key(phone_id: UUID | str, quota_date: date) -> str:
    """The next free send instant of one phone on one tenant-local date, in epoch ms (pacing)."""
    return f"pace:wa:{phone_id}:{quota_date.isoformat()}"


def pace_slots_key(tenant_id: UUID | str, quota_date: date) -> str:
    """Hash job id -> its scheduled send instant (epoch ms): a job re-planned after a crash keeps it."""
    return f"pace:wa:slots:{tenant_id}:{quota_date.isoformat()}"


def portfolio_key(tenant_id: UUID | str) -> str:
    """Sorted set E.164 recipient -> epoch ms of its latest scheduled message, over all the tenant's
    phones: the recipients with a score in the last 24 h are the portfolio budget used."""
    return f"portfolio:wa:{tenant_id}"


def outreach_job_id(
    kind: str, tenant_id: UUID | str, lead_id: UUID | str, sequence_id: str | None, step: int, day: date
) -> str:
    """Deterministic id of one message: one per lead, sequence step and tenant-local day (contract §4)."""
    return f"{kind}:{tenant_id}:{lead_id}:{sequence_id or '-'}:{step}:{day.isoformat()}"


def routed_job_id(router_job_id: str) -> str:
    """The job a router job enqueues: a retried router job derives the same id and enqueues nothing twice."""
    return f"routed:{router_job_id}"


def tenant_dispatch_job_id(tenant_id: UUID | str, tick: str) -> str:
    return f"dispatch:{tenant_id}:{tick}"


def group_dispatch_job_id(tenant_ids: Sequence[UUID], tick: str) -> str:
    """The job of several tenants dispatched together (tenantIds, in id order) in one tick."""
    return f"dispatch:{tenant_ids[0]}..{tenant_ids[-1]}:{tick}"


def cron_tick_label(tick: datetime) -> str:
    return "tick-" + tick.strftime("%Y%m%dT%H%MZ")
