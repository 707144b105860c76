"""Fuzzed bad input for all four jobs: each payload is rejected once, naming a field, and writes nothing.

Hypothesis takes a valid payload of a job and breaks it: a missing field, an extra field, a value of the
wrong type, a huge or negative number, a non-UUID id, unicode where an enum value belongs. The jobs run
in-process against the real services (an asyncio.Runner per test, since hypothesis drives a sync test);
a sample then goes through the real worker process to show arq stores the failure once, with job_try 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from src.client import OutreachClient
from src.errors import InvalidJobInput
from src.jobs.allocate_phone import allocate_phone
from src.jobs.dispatch import dispatch
from src.jobs.route import route
from src.jobs.select_channel import select_channel
from src.redis_io.codec import job_deserializer
from src.runtime.deps import Deps, build_deps, close_deps
from tests.support.factories import Factory
from tests.support.jobs import job_ctx
from tests.support.services import TEST_REDIS_URL, make_settings
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers

T, L, P = str(uuid4()), str(uuid4()), str(uuid4())
VALID: dict[str, dict[str, Any]] = {
    "dispatch": {
        "correlationId": "c-1",
        "tenantId": T,
        "batchSize": 100,
        "channelPreference": "AUTO",
        "priorityFilter": "HIGH",
        "sequenceFilter": "seq-1",
        "dryRun": False,
    },
    "route": {
        "tenantId": T,
        "leadId": L,
        "phoneId": P,
        "messageType": "INITIAL",
        "payload": {"text": "Bună"},
    },
    "allocate_phone": {"tenantId": T, "leadId": L, "preferExisting": True, "correlationId": "c-1"},
    "select_channel": {"tenantId": T, "leadId": L, "preferredChannel": "AUTO", "correlationId": "c-1"},
}
JOBS = {
    "dispatch": dispatch,
    "route": route,
    "allocate_phone": allocate_phone,
    "select_channel": select_channel,
}
REQUIRED = {
    "dispatch": ["correlationId", "tenantId"],
    "route": ["leadId", "phoneId", "messageType", "payload"],  # tenantId is optional (the lead's own)
    "allocate_phone": ["tenantId", "leadId"],
    "select_channel": ["tenantId", "leadId"],
}
KINDS = {
    "correlationId": "text",
    "sequenceFilter": "text",
    "tenantId": "uuid",
    "leadId": "uuid",
    "phoneId": "uuid",
    "batchSize": "batch",
    "dryRun": "bool",
    "preferExisting": "bool",
    "channelPreference": "enum",
    "preferredChannel": "enum",
    "priorityFilter": "enum",
    "messageType": "enum",
    "payload": "object",
}

unicode_text = st.text(min_size=1, max_size=40)
not_text = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=3)
)
huge = st.one_of(st.integers(min_value=1001, max_value=10**30), st.integers(max_value=0, min_value=-(10**30)))
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "text": st.one_of(not_text, st.just(""), st.text(min_size=201, max_size=260)),
    "uuid": st.one_of(not_text, unicode_text.filter(lambda s: s != "ALL" and len(s) != 36), st.just("ALL")),
    "batch": st.one_of(huge, st.floats(allow_nan=False), st.text(max_size=5), st.booleans()),
    "bool": st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False), st.none()),
    "enum": st.one_of(
        unicode_text.filter(
            lambda s: s not in {"AUTO", "WHATSAPP", "EMAIL", "HIGH", "NORMAL", "LOW", "INITIAL", "FOLLOWUP"}
        ),
        not_text,
    ),
    "object": st.one_of(not_text, unicode_text, st.none()),
}


@st.composite
def broken(draw: st.DrawFn) -> tuple[str, Any, str]:
    """(job, payload, a field the rejection must name)."""
    job = draw(st.sampled_from(sorted(VALID)))
    payload = dict(VALID[job])
    mode = draw(st.sampled_from(["missing", "extra", "wrong"]))
    if mode == "missing":
        field = draw(st.sampled_from(REQUIRED[job]))
        del payload[field]
    elif mode == "extra":
        field = draw(
            unicode_text.filter(lambda s: s not in payload and s not in {_snake(k) for k in payload})
        )
        payload[field] = draw(st.one_of(unicode_text, st.integers()))
    else:
        field = draw(st.sampled_from(sorted(payload)))
        payload[field] = draw(WRONG[KINDS[field]])
        if job == "dispatch" and field == "tenantId" and payload[field] == "ALL":
            payload[field] = 7
    return job, payload, field


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


TABLES = ("tenants", "gold_companies", "wa_phone_numbers", "gold_lead_journey", "dispatch_outbox")


async def snapshot(deps: Deps) -> tuple[Any, ...]:
    async with deps.pg.acquire() as conn:
        rows = [
            await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            )
            for table in TABLES
        ]
    return (*rows, sorted(await deps.redis.keys("*")))


@pytest.fixture
def runner(deps: Deps) -> Iterator[tuple[asyncio.Runner, Deps]]:
    """A private event loop with its own Deps: hypothesis runs a sync test, the jobs are async."""
    with asyncio.Runner() as loop:
        own = loop.run(build_deps(make_settings(), clock=deps.clock))
        try:
            yield loop, own
        finally:
            loop.run(close_deps(own))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken())
def test_every_broken_payload_is_refused_naming_a_field(
    runner: tuple[asyncio.Runner, Deps], case: tuple[str, Any, str]
) -> None:
    loop, deps = runner
    job, payload, field = case
    before = loop.run(snapshot(deps))
    ctx = job_ctx(deps, job_id=f"fuzz-{uuid4()}", queue="fuzz")
    with pytest.raises(InvalidJobInput) as caught:
        loop.run(JOBS[job](ctx, payload))
    error = caught.value
    assert any(name in (field, _snake(field)) or name.split(".")[0] == field for name in error.fields), (
        field,
        error.fields,
    )
    for name in error.fields:
        assert name in str(error)
    assert loop.run(snapshot(deps)) == before


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        [VALID["select_channel"]],
        None,
        42,
    ],
)
def test_a_payload_that_is_not_an_object_is_refused(
    runner: tuple[asyncio.Runner, Deps], payload: Any
) -> None:
    loop, deps = runner
    ctx = job_ctx(deps, job_id="fuzz", queue="fuzz")
    for job in JOBS.values():
        with pytest.raises(InvalidJobInput, match=r"invalid job input"):
            loop.run(job(ctx, payload))
    with pytest.raises(InvalidJobInput, match="exactly one positional argument"):
        loop.run(select_channel(ctx, VALID["select_channel"], VALID["select_channel"]))


async def test_the_real_worker_rejects_bad_input_once_and_writes_only_its_result(
    deps: Deps, factory: Factory, redis: Redis, workers: Workers
) -> None:
    await factory.tenant(**ALWAYS_OPEN)
    samples = [
        ("dispatch", {**VALID["dispatch"], "batchSize": -5}, "batchSize"),
        ("dispatch", {**VALID["dispatch"], "tenantId": "Ține minte 🙂"}, "tenantId"),
        ("route", {**VALID["route"], "messageType": "SMS"}, "messageType"),
        ("route", {k: v for k, v in VALID["route"].items() if k != "payload"}, "payload"),
        ("allocate_phone", {**VALID["allocate_phone"], "leadId": "lead-42"}, "leadId"),
        ("allocate_phone", {**VALID["allocate_phone"], "extra": 1}, "extra"),
        ("select_channel", {**VALID["select_channel"], "preferredChannel": 3.5}, "preferredChannel"),
        ("select_channel", {**VALID["select_channel"], "tenantId": 10**40}, "tenantId"),
    ]
    async with workers.new("Settings") as worker, OutreachClient.connect(TEST_REDIS_URL) as client:
        await worker.wait_healthy(redis)
        before = await snapshot(deps)
        jobs = [await client.enqueue_raw(job, payload) for job, payload, _ in samples]
        for handle, (_, _, field) in zip(jobs, samples, strict=True):
            state = await client.job_state(handle.job_id)
            for _ in range(100):
                if state.status == "complete":
                    break
                await asyncio.sleep(0.05)
                state = await client.job_state(handle.job_id)
            assert (state.status, state.success, state.job_try) == ("complete", False, 1)
            assert state.result["error"] == "INVALID_INPUT"
            assert field in state.result["fields"]
            assert field in state.result["message"]
        after = await snapshot(deps)

    assert after[:-1] == before[:-1]  # PostgreSQL untouched
    new_keys = {key.decode() for key in set(after[-1]) - set(before[-1])}
    assert new_keys == {f"arq:result:{handle.job_id}" for handle in jobs}
    stored = job_deserializer(await redis.get(f"arq:result:{jobs[0].job_id}"))
    assert stored["t"] == 1
