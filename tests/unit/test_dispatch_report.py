"""The dispatch result dicts are exactly what the contract model (src/contracts.py) would write."""

from __future__ import annotations

from datetime import UTC, datetime, time
from uuid import uuid4

from src import results
from src.contracts import ChannelPreference, DispatchResult
from src.domain.allocation import BatchAllocator
from src.errors import ConfigurationError
from tests.support.domain import CONTACT, TENANT, lead, phone

NEXT = datetime(2026, 11, 25, 8, 5, tzinfo=UTC)


def round_trip(result: dict[str, object]) -> dict[str, object]:
    return DispatchResult.model_validate(result).model_dump(mode="json", by_alias=True)


def test_an_empty_result_is_the_models_defaults() -> None:
    built = results.dispatch_base(tenant_id=str(TENANT), dry_run=False, relayed=2, next_dispatch_at=NEXT)
    model = DispatchResult(tenant_id=str(TENANT), dry_run=False, relayed_from_outbox=2, next_dispatch_at=NEXT)
    assert built == model.model_dump(mode="json", by_alias=True)
    assert built["nextDispatchAt"] == "2026-11-25T08:05:00Z"


def test_a_batch_result_matches_the_contract_field_for_field() -> None:
    from dataclasses import replace

    from src.domain.dispatch import plan_batch

    slotted = phone(used=199, limit=200, queue_slot="07")
    leads = [
        lead(),
        lead(),
        lead(contact=replace(CONTACT, hlr_reachable=False)),
        lead(contact=replace(CONTACT, whatsapp_opted_out=True, email_opted_out=True)),
    ]
    decisions = plan_batch(
        leads,
        preference=ChannelPreference.AUTO,
        allocator=BatchAllocator(TENANT, [slotted]),
        allowed_bases=frozenset(),
        suppressed={},
    )
    job_ids = {d.lead.journey_id: f"job-{n}" for n, d in enumerate(decisions)}
    result = results.dispatch_base(tenant_id=str(TENANT), dry_run=False, relayed=0, next_dispatch_at=NEXT)
    explained = results.explain(decisions, job_ids, {slotted.id: "07"})
    built = results.dispatch_batch(result, decisions, explained, written={"job-2": False}, held_for_review=3)

    assert built == round_trip(built)
    assert (built["dispatchedToWhatsApp"], built["dispatchedToEmail"]) == (1, 1)
    assert (built["skippedQuotaExceeded"], built["skippedNoChannel"], built["skippedHumanReview"]) == (
        1,
        1,
        3,
    )
    assert [job["jobId"] for job in built["jobsCreated"]] == ["job-0"]
    assert built["duplicateJobsSkipped"] == 1
    assert built["jobsCreated"][0]["queue"] == "q:wa:phone_07"


def test_fan_out_and_summed_plans_match_the_contract() -> None:
    tenant = uuid4()
    left_out = results.tenant_error(uuid4(), ConfigurationError("unknown timezone 'Mars/Olympus'"))
    fanned = results.dispatch_fan_out(
        [(tenant, f"dispatch:{tenant}:tick", True)], [left_out], relayed=0, next_dispatch_at=NEXT
    )
    assert fanned == round_trip(fanned)
    assert fanned["tenantErrors"][0]["error"] == "BAD_CONFIGURATION"
    plan = results.dispatch_base(tenant_id=str(tenant), dry_run=True, relayed=0, next_dispatch_at=NEXT)
    plan["dispatchedToEmail"] = 4
    summed = results.dispatch_plans([plan, plan], [left_out], next_dispatch_at=NEXT)
    assert summed == round_trip(summed)
    assert summed["dispatchedToEmail"] == 8


def test_instants_are_utc_with_z() -> None:
    assert results.instant(None) is None
    local = datetime.combine(datetime(2026, 11, 25).date(), time(10), tzinfo=UTC)
    assert results.instant(local) == "2026-11-25T10:00:00Z"
