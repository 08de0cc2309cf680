"""Keyword-only repository functions; each takes the tenant it acts for and filters on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.models import ApiKey, Run, RunEvent, Tenant, Thread, ThreadGrant, utcnow

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
    busy_with: str | None = None,
) -> Thread:
    """Insert a thread for the tenant: idle, or already held by the run id `busy_with`.

    A chosen id and the owning user are set when given. A run that creates its own thread
    passes `busy_with`, which spares the claim's compare-and-set (nothing else can see the
    thread before this transaction commits).
    """
    thread = Thread(
        tenant_id=tenant_id, metadata_=metadata or {}, values_=values, owner_id=owner_id
    )
    if busy_with is not None:
        thread.status, thread.active_run_id = "busy", busy_with
    if thread_id is not None:
        thread.id = thread_id
    session.add(thread)
    await session.flush()
    return thread


async def get_thread(*, session: AsyncSession, tenant_id: str, thread_id: str) -> Thread | None:
    """Return the tenant's thread with this id, or None (also for another tenant's id)."""
    stmt = select(Thread).where(Thread.id == thread_id, Thread.tenant_id == tenant_id)
    return (await session.exec(stmt)).first()


async def create_run(
    *,
    session: AsyncSession,
    tenant_id: str,
    thread_id: str,
    agent: str,
    input_text: str,
    user_id: str | None = None,
    run_id: str | None = None,
) -> Run:
    """Insert a run in status `running` for the tenant's thread (with a chosen id if given)."""
    run = Run(
        tenant_id=tenant_id,
        thread_id=thread_id,
        agent=agent,
        input=input_text,
        status="running",
        user_id=user_id,
    )
    if run_id is not None:
        run.id = run_id
    session.add(run)
    await session.flush()
    return run


async def get_run(*, session: AsyncSession, tenant_id: str, run_id: str) -> Run | None:
    """Return the tenant's run with this id, or None."""
    stmt = select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id)
    return (await session.exec(stmt)).first()


async def finish_run(
    *,
    session: AsyncSession,
    run: Run,
    status: str,
    output: str | None = None,
    error: str | None = None,
    last_agent: str | None = None,
    usage: dict[str, int] | None = None,
) -> Run:
    """Record a run's outcome (status, output or error, usage) and touch its thread."""
    run.status = status
    run.output = output
    run.error = error
    run.last_agent = last_agent
    for field, value in (usage or {}).items():
        setattr(run, field, value)
    run.finished_at = utcnow()
    session.add(run)
    await session.flush()
    if run.thread_id:
        # Only the run holding the thread (or an unclaimed one) sets its status: one
        # conditional UPDATE, no read (this runs at the end of every run).
        await session.exec(
            update(Thread)
            .where(
                col(Thread.id) == run.thread_id,
                col(Thread.tenant_id) == run.tenant_id,
                or_(col(Thread.active_run_id).is_(None), col(Thread.active_run_id) == run.id),
            )
            .values(
                updated_at=run.finished_at,
                status="idle" if status == "success" else "error",
                active_run_id=None,
            )
        )
    return run


# --- Agent Protocol: threads, runs, claims and run events -------------------------------------


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


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


async def delete_thread(*, session: AsyncSession, tenant_id: str, thread_id: str) -> None:
    """Delete a thread with its grants, runs and their events (the caller clears its
    conversation)."""
    await delete_thread_grants(session=session, tenant_id=tenant_id, thread_id=thread_id)
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


async def detach_thread(*, session: AsyncSession, tenant_id: str, thread_id: str) -> None:
    """Delete a stateless run's thread and its grants but keep its runs (thread_id NULL)."""
    await delete_thread_grants(session=session, tenant_id=tenant_id, thread_id=thread_id)
    await session.exec(
        update(Run)
        .where(col(Run.tenant_id) == tenant_id, col(Run.thread_id) == thread_id)
        .values(thread_id=None)
    )
    await session.exec(
        delete(Thread).where(col(Thread.tenant_id) == tenant_id, col(Thread.id) == thread_id)
    )


def _earlier_pending(thread_id: str, run_id: str, created_at: datetime | None) -> Any:
    """A pending run of the thread queued before this one (or any other, without a time)."""
    clause = and_(
        col(Run.thread_id) == thread_id, col(Run.status) == "pending", col(Run.id) != run_id
    )
    if created_at is not None:
        clause = and_(
            clause,
            or_(
                col(Run.created_at) < created_at,
                and_(col(Run.created_at) == created_at, col(Run.id) < run_id),
            ),
        )
    return exists(select(Run.id).where(clause))


async def claim_thread(
    *,
    session: AsyncSession,
    tenant_id: str,
    thread_id: str,
    run_id: str,
    queued_at: datetime | None,
) -> bool:
    """Compare-and-set the thread to busy for a run; False when another run holds it.

    The UPDATE only matches a thread that is not busy and has no pending run ahead of this one
    (`queued_at` None: no other pending run at all), so claims are FIFO and need no locks.
    """
    stmt = (
        update(Thread)
        .where(
            col(Thread.id) == thread_id,
            col(Thread.tenant_id) == tenant_id,
            # An interrupted thread stays held by its paused run until a review resumes it.
            col(Thread.status).not_in(("busy", "interrupted")),
            ~_earlier_pending(thread_id, run_id, queued_at),
        )
        .values(status="busy", active_run_id=run_id, updated_at=utcnow())
    )
    return _rowcount(await session.exec(stmt)) == 1


async def release_thread(
    *, session: AsyncSession, tenant_id: str, thread_id: str, run_id: str, status: str
) -> bool:
    """Set the thread's status after its active run ends (only if that run still holds it)."""
    stmt = (
        update(Thread)
        .where(
            col(Thread.id) == thread_id,
            col(Thread.tenant_id) == tenant_id,
            col(Thread.active_run_id) == run_id,
        )
        .values(status=status, active_run_id=None, updated_at=utcnow())
    )
    return _rowcount(await session.exec(stmt)) == 1


async def transition_run(
    *,
    session: AsyncSession,
    run_id: str,
    from_status: str,
    held_by: str | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set a run's status (and other columns); False when it was not `from_status`.

    With `held_by`, the run must also still be leased to that worker (a worker whose lease
    lapsed and was taken over cannot write an outcome).
    """
    stmt = update(Run).where(col(Run.id) == run_id, col(Run.status) == from_status)
    if held_by is not None:
        stmt = stmt.where(col(Run.lease_owner) == held_by)
    return _rowcount(await session.exec(stmt.values(updated_at=utcnow(), **values))) == 1


async def take_over_run(
    *, session: AsyncSession, run_id: str, owner: str, expires_at: datetime
) -> bool:
    """Compare-and-set a `running` run whose lease lapsed to a new owner (running -> running)."""
    now = utcnow()
    stmt = (
        update(Run)
        .where(
            col(Run.id) == run_id,
            col(Run.status) == "running",
            col(Run.lease_expires_at).is_not(None),
            col(Run.lease_expires_at) < now,
        )
        .values(lease_owner=owner, lease_expires_at=expires_at, updated_at=now)
        # SQLite hands datetimes back naive: don't evaluate the WHERE on loaded objects.
        .execution_options(synchronize_session=False)
    )
    return _rowcount(await session.exec(stmt)) == 1


async def renew_lease(
    *, session: AsyncSession, run_id: str, owner: str, expires_at: datetime
) -> bool:
    """Extend a running run's lease; False when the worker no longer holds it."""
    stmt = (
        update(Run)
        .where(col(Run.id) == run_id, col(Run.status) == "running", col(Run.lease_owner) == owner)
        .values(lease_expires_at=expires_at)
    )
    return _rowcount(await session.exec(stmt)) == 1


async def expired_leases(*, session: AsyncSession, limit: int = 500) -> Sequence[Run]:
    """Running runs whose lease lapsed (their worker died), oldest lease first."""
    stmt = (
        select(Run)
        .where(
            col(Run.status) == "running",
            col(Run.lease_expires_at).is_not(None),
            col(Run.lease_expires_at) < utcnow(),
        )
        .order_by(col(Run.lease_expires_at))
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


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
        )
        .order_by(col(Run.updated_at))
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


async def touch_run(*, session: AsyncSession, run_id: str, seen: datetime | None) -> bool:
    """Compare-and-set a run's `updated_at` from `seen` to now (one sweeper re-enqueues it)."""
    same = col(Run.updated_at).is_(None) if seen is None else col(Run.updated_at) == seen
    stmt = update(Run).where(col(Run.id) == run_id, same).values(updated_at=utcnow())
    return _rowcount(await session.exec(stmt)) == 1


async def redact_run_input(*, session: AsyncSession, run_id: str, text: str) -> None:
    """Replace a run's stored input (e.g. input a guardrail refused must not be kept)."""
    await session.exec(
        update(Run).where(col(Run.id) == run_id).values(input=text, input_items=None)
    )


async def request_cancel(*, session: AsyncSession, tenant_id: str, run_id: str) -> bool:
    """Flag a run for cancellation (any instance executing it polls the flag)."""
    stmt = (
        update(Run)
        .where(col(Run.id) == run_id, col(Run.tenant_id) == tenant_id)
        .values(cancel_requested=True, updated_at=utcnow())
    )
    return _rowcount(await session.exec(stmt)) == 1


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


async def append_run_events(
    *, session: AsyncSession, tenant_id: str, run_id: str, events: Sequence[tuple[int, str, Any]]
) -> None:
    """Insert (seq, event, data) rows; the (run_id, seq) key refuses a duplicate writer."""
    for seq, event, data in events:
        session.add(RunEvent(tenant_id=tenant_id, run_id=run_id, seq=seq, event=event, data=data))
    await session.flush()


async def list_run_events(
    *, session: AsyncSession, tenant_id: str, run_id: str, after: int = 0, limit: int = 500
) -> Sequence[RunEvent]:
    """A run's events with seq greater than `after`, in order."""
    stmt = (
        select(RunEvent)
        .where(RunEvent.tenant_id == tenant_id, RunEvent.run_id == run_id, RunEvent.seq > after)
        .order_by(col(RunEvent.seq))
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


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
