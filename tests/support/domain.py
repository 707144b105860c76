"""Domain values for the pure tests, with defaults that make them usable; every field can be overridden."""

from __future__ import annotations

from uuid import uuid4

from src.domain.allocation import PhoneState
from src.domain.channels import LeadContact
from src.domain.dispatch import DueLead
from src.domain.lawful import LeadBases

TENANT = uuid4()
CONTACT = LeadContact("COLD", "0721000001", True, "a@b.ro", "valid", False, False, None)


def lead(**changes: object) -> DueLead:
    """A due lead of TENANT, reachable on WhatsApp and by e-mail, not sticky, not in a sequence."""
    values: dict[str, object] = {
        "journey_id": uuid4(),
        "lead_id": uuid4(),
        "contact": CONTACT,
        "bases": LeadBases(),
        "sticky_phone_id": None,
        "sequence_id": None,
        "sequence_step": 0,
        "company_name": "Agroferma Someșul SRL",
        "contact_name": "Ana Pop",
        "judet": "Cluj",
        "localitate": "Dej",
    }
    values.update(changes)
    return DueLead(**values)  # type: ignore[arg-type]


def phone(used: int = 0, limit: int = 200, **changes: object) -> PhoneState:
    """An active, enabled phone of TENANT that has sent `used` of its `limit` today."""
    values: dict[str, object] = {
        "id": uuid4(),
        "tenant_id": TENANT,
        "status": "ACTIVE",
        "is_enabled": True,
        "daily_limit": limit,
        "used_today": used,
        "queue_slot": "07",
    }
    values.update(changes)
    return PhoneState(**values)  # type: ignore[arg-type]
