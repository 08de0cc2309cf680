"""The `purge_retention` job: delete records older than each tenant's retention.

Per tenant (shared/memory/retention.py: its `tenant_retention` row over ASCENT_RETENTION_DAYS_*):

1. stream events of finished runs that finished before the run-events cutoff;
2. finished runs (with their events) that finished before the runs cutoff;
3. threads not updated since the threads cutoff that have no unfinished run: the thread, its
   grants, its conversation, its runs and events (shared.runs.service.delete_thread);
4. store items whose TTL expired (shared.memory.store.purge_expired) and, when the tenant keeps
   store items for N days, items not updated for N days.

Then, for the whole deployment, Idempotency-Keys past their expiry (a last step).

Each batch of at most ASCENT_JOB_BATCH_SIZE rows is its own transaction, and each tenant is a
step. Deleting is idempotent, so two replicas at once only race to delete the same rows, and a
replica killed halfway leaves whole batches behind that the next run finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func
from sqlmodel import col, select

from aca_jobs.steps import run_job, step_done
from shared.api.idempotency import purge_expired
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.engine import db_session
from shared.db.jobs_models import ThreadConsolidation
from shared.db.memory_models import StoreItem
from shared.db.models import Run, RunEvent, Tenant, Thread, utcnow
from shared.db.repo import TERMINAL_RUN_STATUSES
from shared.memory import store as memory
from shared.memory.retention import get_retention
from shared.runs.service import delete_thread

NAME = "purge_retention"
SCHEDULE = "17 3 * * *"


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _finished_before(tenant_id: str, cutoff: datetime) -> Any:
    return and_(
        col(Run.tenant_id) == tenant_id,
        col(Run.status).in_(TERMINAL_RUN_STATUSES),
        func.coalesce(col(Run.finished_at), col(Run.created_at)) < cutoff,
    )


async def _purge_run_events(tenant_id: str, cutoff: datetime, batch: int) -> int:
    removed = 0
    while True:
        async with db_session() as db:
            has_events = exists(select(RunEvent.run_id).where(RunEvent.run_id == Run.id))
            ids: Sequence[str] = (
                await db.exec(
                    select(Run.id)
                    .where(_finished_before(tenant_id, cutoff), has_events)
                    .limit(batch)
                )
            ).all()
            if not ids:
                return removed
            result: Any = await db.exec(
                delete(RunEvent).where(
                    col(RunEvent.tenant_id) == tenant_id, col(RunEvent.run_id).in_(ids)
                )
            )
            await db.commit()
        removed += int(result.rowcount or 0)


async def _purge_runs(tenant_id: str, cutoff: datetime, batch: int) -> int:
    removed = 0
    while True:
        async with db_session() as db:
            ids: Sequence[str] = (
                await db.exec(
                    select(Run.id).where(_finished_before(tenant_id, cutoff)).limit(batch)
                )
            ).all()
            if not ids:
                return removed
            await db.exec(
                delete(RunEvent).where(
                    col(RunEvent.tenant_id) == tenant_id, col(RunEvent.run_id).in_(ids)
                )
            )
            result: Any = await db.exec(
                delete(Run).where(col(Run.tenant_id) == tenant_id, col(Run.id).in_(ids))
            )
            await db.commit()
        removed += int(result.rowcount or 0)


async def _purge_threads(tenant_id: str, cutoff: datetime, batch: int) -> int:
    removed = 0
    unfinished = exists(
        select(Run.id).where(
            Run.thread_id == Thread.id,
            Run.tenant_id == Thread.tenant_id,
            col(Run.status).not_in(TERMINAL_RUN_STATUSES),
        )
    )
    while True:
        async with db_session() as db:
            ids: Sequence[str] = (
                await db.exec(
                    select(Thread.id)
                    .where(
                        col(Thread.tenant_id) == tenant_id,
                        col(Thread.updated_at) < cutoff,
                        col(Thread.status) != "busy",
                        ~unfinished,
                    )
                    .order_by(col(Thread.id))
                    .limit(batch)
                )
            ).all()
        if not ids:
            return removed
        for thread_id in ids:
            await delete_thread(tenant_id, thread_id)
        async with db_session() as db:
            await db.exec(
                delete(ThreadConsolidation).where(
                    col(ThreadConsolidation.tenant_id) == tenant_id,
                    col(ThreadConsolidation.thread_id).in_(ids),
                )
            )
            await db.commit()
        removed += len(ids)


async def _purge_store(tenant_id: str, now: datetime, cutoff: datetime | None) -> int:
    removed = await memory.purge_expired(tenant_id=tenant_id, now=now)
    if cutoff is not None:
        async with db_session() as db:
            result: Any = await db.exec(
                delete(StoreItem).where(
                    col(StoreItem.tenant_id) == tenant_id,
                    col(StoreItem.updated_at) < cutoff,
                )
            )
            await db.commit()
        removed += int(result.rowcount or 0)
    return removed


async def purge_tenant(tenant_id: str, *, now: datetime) -> dict[str, int]:
    """Apply the tenant's retention as of `now`; return how many records of each kind went."""
    batch = get_settings().job_batch_size
    async with db_session() as db:
        keep = await get_retention(session=db, tenant_id=tenant_id)
    counts = {"run_events": 0, "runs": 0, "threads": 0, "store_items": 0}
    if (cut := _cutoff(now, keep.run_events_days)) is not None:
        counts["run_events"] = await _purge_run_events(tenant_id, cut, batch)
    if (cut := _cutoff(now, keep.runs_days)) is not None:
        counts["runs"] = await _purge_runs(tenant_id, cut, batch)
    if (cut := _cutoff(now, keep.threads_days)) is not None:
        counts["threads"] = await _purge_threads(tenant_id, cut, batch)
    counts["store_items"] = await _purge_store(tenant_id, now, _cutoff(now, keep.store_days))
    return counts


async def purge(*, now: datetime | None = None) -> dict[str, int]:
    """Apply every tenant's retention, one tenant per step; return the totals removed."""
    moment = now or utcnow()
    async with db_session() as db:
        tenants = (await db.exec(select(Tenant.id).order_by(col(Tenant.id)))).all()
    totals = {"run_events": 0, "runs": 0, "threads": 0, "store_items": 0}
    for tenant_id in tenants:
        counts = await purge_tenant(tenant_id, now=moment)
        for kind, count in counts.items():
            totals[kind] += count
        await step_done(NAME, f"tenant {tenant_id} purged {counts}")
    totals["idempotency_keys"] = await purge_idempotency_keys(now=moment)
    await step_done(NAME, f"expired idempotency keys purged: {totals['idempotency_keys']}")
    return totals


async def purge_idempotency_keys(*, now: datetime) -> int:
    """Delete every Idempotency-Key past its expiry (ASCENT_IDEMPOTENCY_TTL_HOURS), a batch per
    transaction; a retry after that is a new request anyway (shared/api/idempotency.py)."""
    batch = get_settings().job_batch_size
    removed = 0
    while True:
        count = await direct.write(lambda tx: purge_expired(tx, now=now, limit=batch))
        removed += count
        if count < batch:
            return removed


def main() -> int:
    """Purge every tenant's expired records; exit 0 when done."""
    return run_job(purge)
