"""A tenant's configuration as every job reads it: one mapping of an unusable row to BAD_CONFIGURATION."""

from __future__ import annotations

from src.db.queries.rows import TenantRow
from src.domain.windows import SendingWindow
from src.errors import ConfigurationError


def sending_window(tenant: TenantRow) -> SendingWindow:
    """The tenant's sending window, which also checks its timezone and holiday country: a row the jobs
    cannot work with fails the job for good (ConfigurationError), in every job alike."""
    try:
        return tenant.window()
    except ValueError as exc:
        raise ConfigurationError(f"tenant {tenant.id} has an unusable sending window: {exc}") from None
