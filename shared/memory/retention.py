"""Per-tenant retention: how many days each kind of record is kept before `purge_retention`.

Defaults come from settings (ASCENT_RETENTION_DAYS_THREADS, _RUNS, _RUN_EVENTS, _STORE); a
tenant's row in `tenant_retention` overrides any of them (NULL column = the default). 0 keeps
that kind forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import ValidationFailed
from shared.core.settings import get_settings
from shared.db.jobs_models import TenantRetention
from shared.db.models import utcnow

MAX_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class Retention:
    """Days kept per kind of record for one tenant (0 = forever)."""

    threads_days: int
    runs_days: int
    run_events_days: int
    store_days: int


def default_retention() -> Retention:
    """The deployment's defaults, from settings."""
    s = get_settings()
    return Retention(
        threads_days=s.retention_days_threads,
        runs_days=s.retention_days_runs,
        run_events_days=s.retention_days_run_events,
        store_days=s.retention_days_store,
    )


async def get_retention(*, session: AsyncSession, tenant_id: str) -> Retention:
    """The tenant's effective retention: its overrides over the defaults."""
    base = default_retention()
    row = await session.get(TenantRetention, tenant_id)
    if row is None:
        return base
    return Retention(
        threads_days=base.threads_days if row.threads_days is None else row.threads_days,
        runs_days=base.runs_days if row.runs_days is None else row.runs_days,
        run_events_days=(
            base.run_events_days if row.run_events_days is None else row.run_events_days
        ),
        store_days=base.store_days if row.store_days is None else row.store_days,
    )


async def set_retention(
    *,
    session: AsyncSession,
    tenant_id: str,
    threads_days: int | None = None,
    runs_days: int | None = None,
    run_events_days: int | None = None,
    store_days: int | None = None,
) -> None:
    """Store a tenant's overrides (None = use the default); the caller commits."""
    for value in (threads_days, runs_days, run_events_days, store_days):
        if value is not None and not 0 <= value <= MAX_DAYS:
            raise ValidationFailed(f"Retention days are 0 (forever) to {MAX_DAYS}.")
    row = await session.get(TenantRetention, tenant_id) or TenantRetention(tenant_id=tenant_id)
    row.threads_days = threads_days
    row.runs_days = runs_days
    row.run_events_days = run_events_days
    row.store_days = store_days
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
