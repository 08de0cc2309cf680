"""Keyword-only repository functions; each takes the tenant it acts for and filters on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.models import (
    ApiKey,
    Run,
    RunEvent,
    Tenant,
    Thread,
    ThreadCheckpoint,
    ThreadGrant,
    utcnow,
)

# Run statuses after which a run never changes again.
TERMINAL_RUN_STATUSES = frozenset({"success", "error", "timeout", "interrupted"})


async def create_tenant(
    *, session: AsyncSession, name: str, tenant_id: str | None = None
) -> Tenant:
    """Insert a tenant (with a chosen id when given) and return it."""
    tenant = Tenant(name=name) if tenant_id is None else Tenant(id=tenant_id, name=name)
    session.add(tenant)
    await session.flush()
    return tenant


async def get_tenant(*, session: AsyncSession, tenant_id: str) -> Tenant | None:
    """Return the tenant with this id, or None."""
    return await session.get(Tenant, tenant_id)


async def add_api_key(
    *, session: AsyncSession, tenant_id: str, prefix: str, key_hash: str, name: str = "default"
) -> ApiKey:
    """Store a key's prefix and hash for a tenant."""
    key = ApiKey(tenant_id=tenant_id, prefix=prefix, key_hash=key_hash, name=name)
    session.add(key)
    await session.flush()
    return key


async def find_api_key(
    *, session: AsyncSession, prefix: str, include_revoked: bool = False
) -> ApiKey | None:
    """Return the key with this public prefix (unrevoked only, unless asked), or None."""
    stmt = select(ApiKey).where(ApiKey.prefix == prefix)
    if not include_revoked:
        stmt = stmt.where(col(ApiKey.revoked_at).is_(None))
    return (await session.exec(stmt)).first()


async def create_thread(
    *,
    session: AsyncSession,
    tenant_id: str,
    metadata: dict[str, Any] | None = None,
    thread_id: str | None = None,
    values: dict[str, Any] | None = None,
    owner_id: str | None = None,
) -> Thread:
    """Insert an idle thread for the tenant (a chosen id and the owning user when given).

    A run that creates its own thread does so in its creation unit instead
    (shared/runs/records.py `create_run`).
    """
    thread = Thread(
        tenant_id=tenant_id, metadata_=metadata or {}, values_=values, owner_id=owner_id
    )
    if thread_id is not None:
        thread.id = thread_id
    session.add(thread)
    await session.flush()
    return thread


async def get_thread(*, session: AsyncSession, tenant_id: str, thread_id: str) -> Thread | None:
    """Return the tenant's thread with this id, or None (also for another tenant's id)."""
    stmt = select(Thread).where(Thread.id == thread_id, Thread.tenant_id == tenant_id)
    return (await session.exec(stmt)).first()


async def get_run(*, session: AsyncSession, tenant_id: str, run_id: str) -> Run | None:
    """Return the tenant's run with this id, or None."""
    stmt = select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id)
    return (await session.exec(stmt)).first()


# --- Agent Protocol: threads, runs, claims and run events -------------------------------------


async def search_threads(
    *,
    session: AsyncSession,
    tenant_id: str,
    status: str | None = None,
    visible: ColumnElement[bool] | None = None,
) -> Sequence[Thread]:
    """The tenant's threads (optionally with one status, and only those matching `visible`:
    shared.security.thread_access's condition), most recently updated first."""
    stmt = select(Thread).where(Thread.tenant_id == tenant_id)
    if visible is not None:
        stmt = stmt.where(visible)
    if status is not None:
        stmt = stmt.where(Thread.status == status)
    stmt = stmt.order_by(col(Thread.updated_at).desc(), col(Thread.id))
    return (await session.exec(stmt)).all()


async def delete_thread_grants(*, session: AsyncSession, tenant_id: str, thread_id: str) -> None:
    """Delete every grant of a thread (before the thread: the foreign key refuses otherwise)."""
    await session.exec(
        delete(ThreadGrant).where(
            col(ThreadGrant.tenant_id) == tenant_id, col(ThreadGrant.thread_id) == thread_id
        )
    )


async def keep_latest_checkpoint(*, session: AsyncSession, tenant_id: str, thread_id: str) -> None:
    """Delete a thread's written checkpoints except the newest (runs stay: they are records)."""
    newest = (
        select(ThreadCheckpoint.checkpoint_id)
        .where(
            col(ThreadCheckpoint.tenant_id) == tenant_id,
            col(ThreadCheckpoint.thread_id) == thread_id,
        )
        .order_by(col(ThreadCheckpoint.created_at).desc())
        .limit(1)
    )
    keep = (await session.exec(newest)).first()
    await session.exec(
        delete(ThreadCheckpoint).where(
            col(ThreadCheckpoint.tenant_id) == tenant_id,
            col(ThreadCheckpoint.thread_id) == thread_id,
            col(ThreadCheckpoint.checkpoint_id) != (keep or ""),
        )
    )


async def delete_thread(*, session: AsyncSession, tenant_id: str, thread_id: str) -> None:
    """Delete a thread with its grants, checkpoints, runs and their events (the caller clears its
    conversation)."""
    await delete_thread_grants(session=session, tenant_id=tenant_id, thread_id=thread_id)
    await session.exec(
        delete(ThreadCheckpoint).where(
            col(ThreadCheckpoint.tenant_id) == tenant_id,
            col(ThreadCheckpoint.thread_id) == thread_id,
        )
    )
    run_ids = select(Run.id).where(Run.tenant_id == tenant_id, Run.thread_id == thread_id)
    await session.exec(
        delete(RunEvent).where(
            col(RunEvent.tenant_id) == tenant_id, col(RunEvent.run_id).in_(run_ids)
        )
    )
    await session.exec(
        delete(Run).where(col(Run.tenant_id) == tenant_id, col(Run.thread_id) == thread_id)
    )
    await session.exec(
        delete(Thread).where(col(Thread.tenant_id) == tenant_id, col(Thread.id) == thread_id)
    )


async def stale_pending_runs(
    *, session: AsyncSession, older_than: datetime, limit: int = 500
) -> Sequence[Run]:
    """Pending runs, due now, untouched since `older_than` (their message may be lost)."""
    now = utcnow()
    stmt = (
        select(Run)
        .where(
            col(Run.status) == "pending",
            col(Run.updated_at) < older_than,
            or_(col(Run.not_before).is_(None), col(Run.not_before) <= now),
            # Not while a live receiver holds it (its claim is renewed while it waits).
            or_(col(Run.lease_owner).is_(None), col(Run.lease_expires_at) < now),
        )
        .order_by(col(Run.updated_at))
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


async def touch_run(*, session: AsyncSession, run_id: str, seen: datetime | None) -> bool:
    """Compare-and-set a run's `updated_at` from `seen` to now (one sweeper re-enqueues it)."""
    same = col(Run.updated_at).is_(None) if seen is None else col(Run.updated_at) == seen
    stmt = update(Run).where(col(Run.id) == run_id, same).values(updated_at=utcnow())
    return (await session.exec(stmt)).rowcount == 1


async def search_runs(
    *,
    session: AsyncSession,
    tenant_id: str,
    thread_id: str | None = None,
    agent: str | None = None,
    status: str | None = None,
    visible: ColumnElement[bool] | None = None,
) -> Sequence[Run]:
    """The tenant's runs filtered by thread, agent, status and `visible`
    (shared.security.thread_access's condition), newest first."""
    stmt = select(Run).where(Run.tenant_id == tenant_id)
    if visible is not None:
        stmt = stmt.where(visible)
    if thread_id is not None:
        stmt = stmt.where(Run.thread_id == thread_id)
    if agent is not None:
        stmt = stmt.where(Run.agent == agent)
    if status is not None:
        stmt = stmt.where(Run.status == status)
    stmt = stmt.order_by(col(Run.created_at).desc(), col(Run.id).desc())
    return (await session.exec(stmt)).all()


async def delete_run(*, session: AsyncSession, tenant_id: str, run_id: str) -> None:
    """Delete a run and its events."""
    await session.exec(
        delete(RunEvent).where(col(RunEvent.tenant_id) == tenant_id, col(RunEvent.run_id) == run_id)
    )
    await session.exec(delete(Run).where(col(Run.tenant_id) == tenant_id, col(Run.id) == run_id))


async def last_run_event_seq(*, session: AsyncSession, run_id: str) -> int:
    """The highest seq written for a run (0 when none)."""
    stmt = select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)
    return int((await session.exec(stmt)).first() or 0)


async def last_run_event(
    *, session: AsyncSession, tenant_id: str, run_id: str, event: str
) -> RunEvent | None:
    """The latest event of a kind (e.g. the final `values`) of a run, or None."""
    stmt = (
        select(RunEvent)
        .where(RunEvent.tenant_id == tenant_id, RunEvent.run_id == run_id, RunEvent.event == event)
        .order_by(col(RunEvent.seq).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()
