"""SQL fragments the statements of the catalogue share, which must stay identical to the schema (partial
index predicates) and to the domain (available phone)."""

from __future__ import annotations

# The SQL form of domain.allocation.is_available (same tenant is the caller's WHERE clause);
# tests/integration/test_schema.py proves the two agree.
AVAILABLE_PHONE_SQL = "p.status = 'ACTIVE' AND p.is_enabled"
# The due stages and the review hold, exactly as the partial index ix_gold_lead_journey_due states them.
DUE_STAGES_SQL = "j.engagement_stage IN ('COLD', 'CONTACTED_WA', 'CONTACTED_EMAIL')"
# ... and the objection, which the index states too (src/db/models.py DUE_LEAD_PREDICATE).
NOT_OBJECTED_SQL = "j.objected_at IS NULL"
PRIORITIES = ("HIGH", "NORMAL", "LOW")

# The company columns a lead's decision and its message read, in a journey's query (alias c).
COMPANY_COLUMNS = (
    "c.denumire, c.telefon_principal, c.hlr_reachable, c.email_principal, c.email_status, "
    "c.contact_principal_nume, c.judet, c.localitate"
)
COMPANY_JOIN = "JOIN gold_companies c ON c.tenant_id = j.tenant_id AND c.id = j.lead_id"
