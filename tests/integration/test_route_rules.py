"""route as the specification calls it (no tenant), and what an operator expects of it: a suspended tenant,
a lead that may get no message, the tenant's sending window, a reply sent at once, a bounded payload."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from src.contracts import RouterResult
from src.errors import InvalidJobInput, NotFound
from src.jobs.route import route
from src.names import ARQ_JOB_PREFIX, quota_key, quota_reservations_key
from src.redis_io.codec import loads
from src.redis_io.job_writer import JOB_EXPIRES_MS
from src.runtime.clock import FixedClock
from src.runtime.deps import Deps
from tests.support.factories import REFUSED_LEADS, Factory
from tests.support.jobs import checked, job_ctx
from tests.support.services import TEST_REDIS_URL
from tests.support.tenants import ALWAYS_OPEN

CHRISTMAS_3AM = datetime(2026, 12, 25, 1, 0, tzinfo=UTC)  # a Friday, a public holiday, 03:00 in Bucharest
MONDAY_9AM = datetime(2026, 12, 28, 7, 0, tzinfo=UTC)  # the window's next opening


def message(lead: UUID, phone: UUID, tenant: UUID | None = None, **extra: Any) -> dict[str, Any]:
    """A RouterJobData as the specification has it: no tenant unless one is given."""
    data = {"leadId": str(lead), "phoneId": str(phone), "messageType": "INITIAL", "payload": {"text": "Bună"}}
    if tenant is not None:
        data["tenantId"] = str(tenant)
    return data | extra


async def run(deps: Deps, data: dict[str, Any], job_id: str = "router-1") -> dict[str, Any]:
    return checked(RouterResult, await route(job_ctx(deps, job_id=job_id), data))


async def test_the_specification_s_input_routes_for_the_lead_s_own_tenant(
    deps: Deps, factory: Factory, redis: Redis, today: date
) -> None:
    # A phone of another tenant, with more room than the lead's tenant's.
    await factory.phone(await factory.tenant(**ALWAYS_OPEN), daily_limit=1_000_000)
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000051")
    lead = await factory.lead(tenant)

    result = await run(deps, message(lead, phone))

    assert (result["routed"], result["targetQueue"], result["phoneId"]) == (True, "q:wa:phone_51", str(phone))
    job = loads(await redis.get(ARQ_JOB_PREFIX + result["jobId"]))
    assert job["a"][0]["tenantId"] == str(tenant)
    assert int(await redis.get(quota_key(phone, today))) == 1


async def test_without_a_tenant_another_tenant_s_phone_is_answered_as_an_unknown_phone(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    mine, theirs = await factory.tenant(**ALWAYS_OPEN), await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(mine)
    lead = await factory.lead(mine)
    their_phone = await factory.phone(theirs)
    unknown_phone = uuid4()

    with pytest.raises(NotFound) as foreign:
        await run(deps, message(lead, their_phone))
    with pytest.raises(NotFound) as unknown:
        await run(deps, message(lead, unknown_phone))

    assert foreign.value.payload() == {
        **unknown.value.payload(),
        "message": str(unknown.value).replace(str(unknown_phone), str(their_phone)),
    }
    assert str(theirs) not in str(foreign.value)
    unknown_lead = uuid4()
    with pytest.raises(NotFound, match=f"^lead {unknown_lead} not found$"):
        await run(deps, message(unknown_lead, their_phone))
    assert await redis.dbsize() == 0


async def test_without_a_tenant_a_reroute_stays_in_the_lead_s_tenant(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    theirs = await factory.tenant(**ALWAYS_OPEN)
    their_roomy_phone = await factory.phone(theirs, daily_limit=1_000_000)
    mine = await factory.tenant(**ALWAYS_OPEN)
    banned = await factory.phone(mine, status="BANNED")
    my_last_send = await factory.phone(mine, daily_limit=1)
    lead = await factory.lead(mine, assigned_phone_id=banned)

    first = await run(deps, message(lead, banned), job_id="router-1")
    second = await run(deps, message(lead, banned), job_id="router-2")

    assert (first["routed"], first["phoneId"], first["reroutedFrom"]) == (
        True,
        str(my_last_send),
        str(banned),
    )
    assert (second["routed"], second["reason"].split(":")[0]) == (False, "NO_PHONE_WITH_QUOTA")
    assert not [key async for key in redis.scan_iter(match=f"*{their_roomy_phone}*")]


@pytest.mark.parametrize(("journey", "code"), REFUSED_LEADS)
@pytest.mark.parametrize("send_now", [False, True])
async def test_a_lead_that_may_get_no_message_is_not_routed(
    deps: Deps, factory: Factory, redis: Redis, journey: dict[str, Any], code: str, send_now: bool
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant, **journey)

    result = await run(deps, message(lead, phone, sendNow=send_now))

    assert (result["routed"], result["enqueued"], result["reason"].split(":")[0]) == (False, False, code)
    assert await redis.dbsize() == 0


async def test_a_suspended_tenant_routes_nothing(deps: Deps, factory: Factory, redis: Redis) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN, status="SUSPENDED")
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)

    result = await run(deps, message(lead, phone, tenant, sendNow=True))

    assert (result["routed"], result["reason"]) == (
        False,
        "TENANT_SUSPENDED: the tenant is SUSPENDED, it sends nothing",
    )
    assert await redis.dbsize() == 0


async def test_at_3am_on_christmas_the_message_waits_for_the_window_and_counts_on_its_day(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await factory.tenant()  # Monday to Friday, 09:00-18:00 Bucharest, Romanian holidays off
    phone = await factory.phone(tenant, phone_number="+40721000052")
    lead = await factory.lead(tenant)
    clock.now = CHRISTMAS_3AM

    earliest = clock.wall_ms(MONDAY_9AM)
    result = await run(deps, message(lead, phone))
    latest = clock.wall_ms(MONDAY_9AM)

    assert (result["routed"], result["deferred"], result["scheduledAt"]) == (
        True,
        True,
        "2026-12-28T07:00:00Z",
    )
    score = await redis.zscore("q:wa:phone_52", result["jobId"])
    assert earliest <= score <= latest
    # Counted on the Monday it goes out, and kept a quota TTL past that instant, not from now.
    assert (
        await redis.get(quota_key(phone, date(2026, 12, 25))),
        await redis.get(quota_key(phone, date(2026, 12, 28))),
    ) == (None, b"1")
    ahead_s = (MONDAY_9AM - CHRISTMAS_3AM).total_seconds()
    for key in (quota_key(phone, date(2026, 12, 28)), quota_reservations_key(tenant, date(2026, 12, 28))):
        assert await redis.ttl(key) >= deps.config.quota_key_ttl_s + ahead_s - 5
    # The job lives a day past its time, as arq's own deferred jobs do.
    assert await redis.pttl(ARQ_JOB_PREFIX + result["jobId"]) >= ahead_s * 1000 + JOB_EXPIRES_MS - 5_000


async def test_a_rerouted_message_waits_for_the_window_too(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await factory.tenant()
    banned = await factory.phone(tenant, status="BANNED")
    healthy = await factory.phone(tenant, phone_number="+40721000053")
    lead = await factory.lead(tenant, assigned_phone_id=banned)
    clock.now = CHRISTMAS_3AM

    earliest = clock.wall_ms(MONDAY_9AM)
    result = await run(deps, message(lead, banned))

    assert (result["phoneId"], result["deferred"], result["scheduledAt"]) == (
        str(healthy),
        True,
        "2026-12-28T07:00:00Z",
    )
    assert await redis.zscore("q:wa:phone_53", result["jobId"]) >= earliest
    assert await redis.get(quota_key(healthy, date(2026, 12, 28))) == b"1"
    ahead_s = (MONDAY_9AM - CHRISTMAS_3AM).total_seconds()
    assert (
        await redis.ttl(quota_key(healthy, date(2026, 12, 28))) >= deps.config.quota_key_ttl_s + ahead_s - 5
    )


async def test_a_reply_goes_at_once_even_at_3am_on_christmas(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await factory.tenant()
    phone = await factory.phone(tenant, phone_number="+40721000054")
    lead = await factory.lead(tenant, engagement_stage="WARM_REPLY")
    clock.now = CHRISTMAS_3AM

    earliest = clock.wall_ms(CHRISTMAS_3AM)
    result = await run(deps, message(lead, phone, sendNow=True))
    latest = clock.wall_ms(CHRISTMAS_3AM)

    assert (result["routed"], result["deferred"], result["scheduledAt"]) == (True, False, None)
    assert earliest <= await redis.zscore("q:wa:phone_54", result["jobId"]) <= latest
    assert await redis.get(quota_key(phone, date(2026, 12, 25))) == b"1"


async def test_a_reply_still_needs_quota(
    deps: Deps, factory: Factory, redis: Redis, clock: FixedClock
) -> None:
    tenant = await factory.tenant()
    phone = await factory.phone(tenant, daily_limit=2)
    await redis.set(quota_key(phone, date(2026, 12, 25)), 2)
    lead = await factory.lead(tenant)
    clock.now = CHRISTMAS_3AM

    result = await run(deps, message(lead, phone, sendNow=True))

    assert (result["routed"], result["reason"].split(":")[0]) == (False, "QUOTA_EXHAUSTED")


def payload_of_size(size: int) -> dict[str, str]:
    """A payload whose JSON encoding is exactly `size` bytes."""
    payload = {"text": ""}
    payload["text"] = "ă" * ((size - len(orjson.dumps(payload))) // 2)
    payload["text"] += "x" * (size - len(orjson.dumps(payload)))
    assert len(orjson.dumps(payload)) == size
    return payload


async def test_a_payload_over_max_payload_bytes_is_refused_naming_payload(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)
    limit = deps.config.max_payload_bytes
    assert limit == 64 * 1024

    for too_big in (limit + 1, 20 * 1024 * 1024):
        with pytest.raises(InvalidJobInput) as refused:
            await run(deps, message(lead, phone, payload=payload_of_size(too_big)))
        assert refused.value.fields == ["payload"]
        assert f"payload: {too_big} bytes as JSON, over the limit of {limit}" in str(refused.value)
    assert await redis.dbsize() == 0

    assert (await run(deps, message(lead, phone, payload=payload_of_size(limit))))["routed"] is True


async def test_the_client_routes_without_a_tenant_and_refuses_a_big_payload_before_enqueueing(
    deps: Deps, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)

    async with OutreachClient.connect(TEST_REDIS_URL, max_payload_bytes=2048) as client:
        job = await client.route(
            lead_id=lead, phone_id=phone, message_type="FOLLOWUP", payload={"text": "Da"}
        )
        with pytest.raises(InvalidJobInput) as refused:
            await client.route(
                lead_id=lead, phone_id=phone, message_type="FOLLOWUP", payload=payload_of_size(2049)
            )

    assert refused.value.fields == ["payload"]
    assert await redis.zrange(job.queue, 0, -1) == [job.job_id.encode()]
    [sent] = loads(await redis.get(ARQ_JOB_PREFIX + job.job_id))["a"]
    assert (sent["tenantId"], sent["leadId"], sent["payload"]) == (None, str(lead), {"text": "Da"})
    result = await run(deps, sent, job_id=job.job_id)
    assert (result["routed"], result["phoneId"]) == (True, str(phone))
