"""What the jobs read for the law: a lead's bases and objection, and the suppression entries that name it.

Dispatch looks a whole batch's keys up in one statement (`suppression_entries`). A per-lead job cannot
know a lead's keys before it reads the lead, and one more round trip would cost it a good share of its
time (README, Performance): its context query computes the keys SQL can compute for the usual shapes (a
plain Romanian number, an address with spaces around it) and the channels of the entries naming them
(`SUPPRESSION_PROBE`). `suppressed_media` then checks that those are the keys src/domain/suppression.py
computes, and looks the exact keys up when they are not (a number in another shape, a Unicode space), so
the answer is the domain's in every case, and one round trip in the usual one.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg

from src.db.queries.rows import BasesColumns, Record, columns
from src.domain.lawful import Basis, LeadBases, Medium
from src.domain.suppression import MEDIA_OF, Entry, LeadKeys, Matcher, lead_keys

# A journey's bases and objection (alias j), as `decode_bases` reads them.
BASES_COLUMNS = columns(BasesColumns, "j")


def decode_bases(row: Record) -> LeadBases:
    return LeadBases(
        whatsapp=Basis(row["whatsapp_lawful_basis"], row["whatsapp_basis_at"], row["whatsapp_basis_source"]),
        email=Basis(row["email_lawful_basis"], row["email_basis_at"], row["email_basis_source"]),
        objected=row["objected_at"] is not None,
    )


# Entries of the tenant ($1) and global ones whose (kind, value) is one of the keys: addresses ($2),
# domains ($3), numbers ($4). Three probes of uq_suppressions_entry (kind, value, ...) per key.
_ENTRIES = """
    SELECT kind, value, channel FROM suppressions
    WHERE (tenant_id = $1 OR tenant_id IS NULL)
      AND ((kind = 'EMAIL' AND value = ANY($2::text[])) OR (kind = 'DOMAIN' AND value = ANY($3::text[]))
           OR (kind = 'PHONE' AND value = ANY($4::text[])))
"""


_ENTRIES_OF_TENANTS = """
    SELECT tenant_id, kind, value, channel FROM suppressions
    WHERE (tenant_id = ANY($1::uuid[]) OR tenant_id IS NULL)
      AND ((kind = 'EMAIL' AND value = ANY($2::text[])) OR (kind = 'DOMAIN' AND value = ANY($3::text[]))
           OR (kind = 'PHONE' AND value = ANY($4::text[])))
"""


def _key_values(keys: Iterable[LeadKeys]) -> tuple[list[str], list[str], list[str]]:
    """The addresses, domains and numbers of these keys, each once."""
    emails: set[str] = set()
    domains: set[str] = set()
    phones: set[str] = set()
    for key in keys:
        if key.email is not None:
            emails.add(key.email)
        domains.update(key.domains)
        if key.phone is not None:
            phones.add(key.phone)
    return list(emails), list(domains), list(phones)


async def suppression_entries(
    conn: asyncpg.Connection, *, tenant_id: UUID, keys: Iterable[LeadKeys]
) -> Matcher:
    """The entries that name any of these leads, in one statement."""
    emails, domains, phones = _key_values(keys)
    if not (emails or domains or phones):
        return Matcher(())
    rows = await conn.fetch(_ENTRIES, tenant_id, emails, domains, phones)
    return Matcher(Entry(row["kind"], row["value"], row["channel"]) for row in rows)


async def suppression_entries_of_tenants(
    conn: asyncpg.Connection, *, keys: dict[UUID, list[LeadKeys]]
) -> dict[UUID, Matcher]:
    """`suppression_entries` of each tenant's leads (tenant -> their keys), in one statement: a tenant's
    matcher holds its own entries and the global ones. A tenant no entry names: no key."""
    emails, domains, phones = _key_values(key for tenant_keys in keys.values() for key in tenant_keys)
    if not (emails or domains or phones):
        return {}
    rows = await conn.fetch(_ENTRIES_OF_TENANTS, list(keys), emails, domains, phones)
    if not rows:
        return {}
    entries: dict[UUID | None, list[Entry]] = {}
    for row in rows:
        entries.setdefault(row["tenant_id"], []).append(Entry(row["kind"], row["value"], row["channel"]))
    shared = entries.get(None, [])
    return {tenant: Matcher([*entries.get(tenant, []), *shared]) for tenant in keys}


# The per-lead probe, a LATERAL over a journey j and its company c: the keys SQL computes (the plain
# Romanian shapes of src/domain/channels.py `_plain_romanian`; an address stripped of spaces, lower
# case; its domain and the domains above it) and the channels of the entries naming them.
SUPPRESSION_PROBE = r"""
    LEFT JOIN LATERAL (
        SELECT k.phone AS key_phone, k.email AS key_email, k.domains AS key_domains,
               ARRAY(SELECT DISTINCT s.channel FROM suppressions s
                     WHERE (s.tenant_id = j.tenant_id OR s.tenant_id IS NULL)
                       AND ((s.kind = 'PHONE' AND s.value = k.phone)
                            OR (s.kind = 'EMAIL' AND s.value = k.email)
                            OR (s.kind = 'DOMAIN' AND s.value = ANY(k.domains)))) AS suppressed_channels
        FROM (
            SELECT CASE WHEN r.n ~ '^(\+40|0040|0)[1-9][0-9]{8}$' THEN '+40' || right(r.n, 9) END AS phone,
                   r.a AS email,
                   ARRAY(SELECT array_to_string(r.labels[i:], '.')
                         FROM generate_series(1, cardinality(r.labels) - 1) AS i ORDER BY i) AS domains
            FROM (
                SELECT regexp_replace(c.telefon_principal, '[ .-]', '', 'g') AS n, e.a,
                       string_to_array(split_part(e.a, '@', 2), '.') AS labels
                FROM (SELECT CASE WHEN lower(btrim(c.email_principal)) ~ '^[^@\s]+@[^@\s]+$'
                                  THEN lower(btrim(c.email_principal)) END AS a) AS e
            ) AS r
        ) AS k
    ) AS sup ON true
"""
PROBE_COLUMNS = "sup.key_phone, sup.key_email, sup.key_domains, sup.suppressed_channels"


async def suppressed_media(conn: asyncpg.Connection, *, tenant_id: UUID, row: Record) -> frozenset[Medium]:
    """The media entries block for the lead of a row with PROBE_COLUMNS, telefon_principal and
    email_principal: the probe's answer when its keys are the domain's, else the exact keys' entries."""
    exact = lead_keys(row["email_principal"], row["telefon_principal"])
    probed = LeadKeys(row["key_email"], tuple(row["key_domains"] or ()), row["key_phone"])
    if exact == probed:
        media: frozenset[Medium] = frozenset()
        for channel in row["suppressed_channels"]:
            media |= MEDIA_OF[channel]
        return media
    matcher = await suppression_entries(conn, tenant_id=tenant_id, keys=[exact])
    return matcher.suppressed(exact)
