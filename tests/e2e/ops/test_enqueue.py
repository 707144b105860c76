"""`enqueue ... --wait` and `job ID` through a real worker process."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from src.runtime.deps import Deps
from tests.support.commands import cli
from tests.support.factories import Factory
from tests.support.tenants import ALWAYS_OPEN
from tests.support.workers import Workers


async def test_every_job_can_be_enqueued_waited_for_and_looked_up(
    deps: Deps, factory: Factory, redis: Redis, workers: Workers
) -> None:
    # Unpaced (ALWAYS_OPEN): the dispatched message below follows a routed one on the same phone, and is looked up as
    # due now ("queued"), not deferred to the phone's next paced slot.
    tenant = await factory.tenant(**ALWAYS_OPEN)
    phone = await factory.phone(tenant, phone_number="+40721000077")
    lead = await factory.lead(tenant, company={"denumire": "Agroferma Someșul SRL"})
    ids = {"--tenant-id": str(tenant), "--lead-id": str(lead)}
    lead_args = [part for pair in ids.items() for part in pair]

    async with workers.new("Settings") as worker:
        await worker.wait_healthy(redis)

        select = await cli(
            "enqueue", "select", *lead_args, "--preferred-channel", "EMAIL", "--wait", "--json"
        )
        assert select.code == 0, select
        selected: Any = select.json()
        assert (selected["success"], selected["result"]["selectedChannel"]) == (True, "EMAIL_COLD")

        allocate = await cli("enqueue", "allocate", *lead_args, "--no-prefer-existing", "--wait")
        assert allocate.code == 0, allocate
        assert f"allocatedPhoneId: {phone}" in allocate.out
        assert "allocationType: NEW" in allocate.out

        route = await cli(
            "enqueue", "route", *lead_args, "--phone-id", str(phone), "--message-type", "FOLLOWUP",
            "--payload", '{"text": "Bună ziua"}', "--job-id", "route-once", "--correlation-id", "ops-test",
            "--wait", "--json",
        )  # fmt: skip
        assert route.code == 0, route
        routed: Any = route.json()
        assert routed["result"]["targetQueue"] == "q:wa:phone_77:followup"
        again = await cli(
            "enqueue", "route", *lead_args, "--phone-id", str(phone), "--message-type", "FOLLOWUP",
            "--payload", "{}", "--job-id", "route-once",
        )  # fmt: skip
        assert again.code == 0
        assert "job route-once already exists" in again.out
        # The specification's RouterJobData has no tenant: the lead's own. A reply goes out at once.
        spec = await cli(
            "enqueue", "route", "--lead-id", str(lead), "--phone-id", str(phone), "--message-type", "INITIAL",
            "--payload", '{"text": "Revin"}', "--send-now", "--wait", "--json",
        )  # fmt: skip
        assert spec.code == 0, spec
        spec_result: Any = spec.json()
        assert (spec_result["result"]["routed"], spec_result["result"]["deferred"]) == (True, False)
        too_big = await cli(
            "enqueue", "route", "--lead-id", str(lead), "--phone-id", str(phone), "--message-type", "INITIAL",
            "--payload", '{"text": "%s"}' % ("x" * 2000), MAX_PAYLOAD_BYTES="1024",
        )  # fmt: skip
        assert too_big.code == 2, too_big
        assert "payload: 2011 bytes as JSON, over the limit of 1024 (MAX_PAYLOAD_BYTES)" in too_big.err

        dry = await cli("enqueue", "dispatch", "--tenant-id", str(tenant), "--dry-run", "--wait")
        assert dry.code == 0, dry
        assert "dry run (nothing written)" in dry.out
        assert "eligible leads 1: 1 to WhatsApp" in dry.out

        dispatch = await cli(
            "enqueue", "dispatch", "--tenant-id", str(tenant), "--batch-size", "10",
            "--channel-preference", "WHATSAPP", "--priority-filter", "NORMAL", "--job-id", "dispatch-ops",
            "--wait",
        )  # fmt: skip
        assert dispatch.code == 0, dispatch
        assert "DISPATCHED" in dispatch.out
        assert "q:wa:phone_77" in dispatch.out

        state = await cli("job", "dispatch-ops", "--json")
        assert state.code == 0
        looked_up: Any = state.json()
        assert (looked_up["status"], looked_up["function"], looked_up["success"]) == (
            "complete",
            "dispatch",
            True,
        )
        assert looked_up["result"]["dispatchedToWhatsApp"] == 1
        text = await cli("job", "route-once")
        assert "job route-once: complete" in text.out

        output_job = looked_up["result"]["jobsCreated"][0]
        queued = await cli("job", output_job["jobId"], "--queue", output_job["queue"])
        assert queued.code == 0, queued
        assert "queued" in queued.out

        failing = await cli(
            "enqueue", "select", "--tenant-id", str(tenant), "--lead-id", str(phone), "--wait"
        )
        assert failing.code == 1
        assert "NOT_FOUND" in failing.err
        assert "Traceback" not in failing.err


async def test_wait_gives_up_with_a_hint_when_no_worker_runs(deps: Deps) -> None:
    result = await cli(
        "enqueue", "dispatch", "--tenant-id", "ALL", "--wait", "--timeout", "0.5", "--sequence-filter", "s1"
    )
    assert result.code == 1
    assert "no result after 0.5s: is a worker serving outreach:orchestrator:dispatch?" in result.err
