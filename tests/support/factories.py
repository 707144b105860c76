"""Rows for tests, with defaults that make a lead dispatchable; every field can be overridden."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.tenants import ALWAYS_OPEN

_numbers = itertools.count(1)

# Journeys of leads that may get no WhatsApp message, and the reason code route and allocate_phone give.
REFUSED_LEADS: list[tuple[dict[str, Any], str]] = [
    ({"engagement_stage": "CONVERTED"}, "TERMINAL_STAGE"),
    ({"engagement_stage": "DEAD"}, "TERMINAL_STAGE"),
    ({"engagement_stage": "PAUSED"}, "TERMINAL_STAGE"),
    ({"requires_human_review": True}, "HELD_FOR_REVIEW"),
    ({"whatsapp_opted_out": True}, "WHATSAPP_OPTED_OUT"),
]


# A lead's journey records a basis for both channels by default, one the Romanian default of a new tenant
# allows: a test about the law overrides these.
CONSENT_GIVEN_AT = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
BASES: dict[str, Any] = {
    "whatsapp_lawful_basis": "CONSENT",
    "whatsapp_basis_at": CONSENT_GIVEN_AT,
    "whatsapp_basis_source": "form:https://agro.example/abonare",
    "email_lawful_basis": "CONSENT",
    "email_basis_at": CONSENT_GIVEN_AT,
    "email_basis_source": "form:https://agro.example/abonare",
}


# `lawfulBasis` of a message to such a lead (src/domain/lawful.py Basis.evidence).
CONSENT_EVIDENCE: dict[str, Any] = {
    "basis": "CONSENT",
    "at": "2026-01-15T09:00:00Z",
    "source": "form:https://agro.example/abonare",
}


def _insert(table: str, values: dict[str, Any]) -> Any:
    columns = ", ".join(values)
    params = ", ".join(f":{key}" for key in values)
    return text(f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING id")


class Factory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _create(self, table: str, values: dict[str, Any]) -> UUID:
        async with self.engine.begin() as conn:
            created: UUID = (await conn.execute(_insert(table, values), values)).scalar_one()
        return created

    async def tenant(self, **overrides: Any) -> UUID:
        return await self._create("tenants", {"name": f"Tenant {next(_numbers)}", **overrides})

    async def phone(self, tenant_id: UUID, **overrides: Any) -> UUID:
        number = f"+4072{next(_numbers):07d}"
        return await self._create(
            "wa_phone_numbers", {"tenant_id": tenant_id, "phone_number": number, **overrides}
        )

    async def company(self, tenant_id: UUID, **overrides: Any) -> UUID:
        n = next(_numbers)
        values = {
            "tenant_id": tenant_id,
            "denumire": f"Agro Ferma {n} SRL",
            "telefon_principal": f"072{n % 10_000_000:07d}",
            "hlr_reachable": True,
            "email_principal": f"office{n}@ferma.ro",
            "email_status": "valid",
            "contact_principal_nume": "Ion Popescu",
            "judet": "Cluj",
            "localitate": "Turda",
            **overrides,
        }
        return await self._create("gold_companies", values)

    async def lead(self, tenant_id: UUID, company: dict[str, Any] | None = None, **journey: Any) -> UUID:
        """A company and its journey, with a basis for both channels unless `journey` says otherwise;
        returns the lead id (= company id)."""
        lead_id = await self.company(tenant_id, **(company or {}))
        values = {"tenant_id": tenant_id, "lead_id": lead_id, **BASES, **journey}
        await self._create("gold_lead_journey", values)
        return lead_id

    async def suppression(self, tenant_id: UUID | None, kind: str, value: str, channel: str = "ALL") -> None:
        """A suppression entry (tenant None: every tenant's); `value` as stored, normalised."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO suppressions (tenant_id, kind, value, channel) VALUES (:t, :k, :v, :c)"),
                {"t": tenant_id, "k": kind, "v": value, "c": channel},
            )

    async def leads(self, tenant_id: UUID, count: int, **journey: Any) -> list[UUID]:
        return [await self.lead(tenant_id, **journey) for _ in range(count)]

    async def journey(self, tenant_id: UUID, lead_id: UUID) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text("SELECT * FROM gold_lead_journey WHERE tenant_id = :t AND lead_id = :l"),
                        {"t": tenant_id, "l": lead_id},
                    )
                )
                .mappings()
                .one()
            )
        return dict(row)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()


async def tenant_with_phone(factory: Factory, **phone: Any) -> UUID:
    """An always-open tenant with one phone (its columns in `phone`)."""
    tenant = await factory.tenant(**ALWAYS_OPEN)
    await factory.phone(tenant, **phone)
    return tenant


async def tenant_with_leads(factory: Factory, count: int) -> UUID:
    """An always-open tenant with one phone and `count` due leads."""
    tenant = await tenant_with_phone(factory)
    await factory.leads(tenant, count)
    return tenant


async def phone_on_warm_up_day_3(factory: Factory, tenant: UUID, today: date) -> UUID:
    """A phone of daily_limit 200 on the third day of a 20 + 10/day warm-up: its effective limit is 40."""
    return await factory.phone(
        tenant,
        daily_limit=200,
        warmup_started_on=today - timedelta(days=2),
        warmup_initial_limit=20,
        warmup_daily_increase=10,
    )


def new_id() -> UUID:
    return uuid4()


BULK_LEADS = text(
    """
    WITH companies AS (
        INSERT INTO gold_companies (tenant_id, denumire, telefon_principal, hlr_reachable, email_principal,
                                    email_status, judet, localitate)
        SELECT :tenant_id, 'Firma ' || n || ' SRL', '072' || lpad((:offset + n)::text, 7, '0'),
               n % 100 < :whatsapp_percent, 'contact' || n || '@firma.ro',
               CASE WHEN n % 3 = 0 THEN 'valid' ELSE 'unknown' END, 'Iași', 'Pașcani'
        FROM generate_series(1, :count) AS n
        RETURNING id, tenant_id
    )
    INSERT INTO gold_lead_journey (tenant_id, lead_id, priority, whatsapp_lawful_basis, whatsapp_basis_at,
                                   whatsapp_basis_source, email_lawful_basis, email_basis_at, email_basis_source)
    SELECT tenant_id, id, (ARRAY['HIGH', 'NORMAL', 'NORMAL', 'LOW'])[1 + (random() * 3)::int],
           'CONSENT', now(), 'form:bulk', 'EXISTING_CUSTOMER', now(), 'contract:bulk'
    FROM companies
    """
)


async def bulk_leads(
    engine: AsyncEngine, tenant_id: UUID, count: int, *, whatsapp_percent: int, offset: int
) -> None:
    """`count` due leads in one statement: whatsapp_percent of them reachable on WhatsApp, a third with a
    valid e-mail, the rest with no usable channel; each with a basis for both channels."""
    async with engine.begin() as conn:
        await conn.execute(
            BULK_LEADS,
            {"tenant_id": tenant_id, "count": count, "whatsapp_percent": whatsapp_percent, "offset": offset},
        )
