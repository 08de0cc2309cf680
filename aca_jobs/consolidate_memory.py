"""The `consolidate_memory` job: summarize idle threads into their user's long-term memory.

A thread is eligible when it is idle (or ended in error) and has not been updated for
ASCENT_CONSOLIDATE_IDLE_MINUTES, one of its runs names a user (`runs.user_id`), and this
version of it (its `updated_at`) was not consolidated yet. The `memory_consolidator` agent
summarizes the conversation; the summary is written with `shared.memory.store.put` to the user's
namespace (`("users", <user>, "memories")`, where the `recall` tool finds it) under the key
`thread-<thread_id>`, so a thread has one summary that later versions replace.

Exactly one replica works on a thread: it first claims the thread's `thread_consolidations`
row with an insert (or a compare-and-set on a finished/expired row), holding it for
ASCENT_CONSOLIDATE_LEASE_SECONDS, and marks it `done` after the memory is written. Two
replicas at once split the threads between them; a replica killed halfway leaves a claim whose
lease expires, and the memory write is an idempotent put, so redoing that thread is harmless.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from aca_jobs.steps import run_job, step_done
from shared.agents.memory_consolidator import summarize
from shared.agents.memory_tools import user_namespace
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.jobs_models import ThreadConsolidation
from shared.db.models import Run, Thread, utcnow
from shared.db.types import as_utc
from shared.memory import store as memory
from shared.memory.sessions import build_session
from shared.runs.messages import to_messages

NAME = "consolidate_memory"
SCHEDULE = "*/30 * * * *"
log = logging.getLogger("aca_jobs")


def memory_key(thread_id: str) -> str:
    """The store key of a thread's summary in its user's namespace."""
    return f"thread-{thread_id}"


async def _candidates(now: datetime, limit: int) -> list[tuple[str, str, datetime]]:
    """Eligible (tenant, thread, version) rows, oldest first."""
    idle_before = now - timedelta(minutes=get_settings().consolidate_idle_minutes)
    has_user = exists(
        select(Run.id).where(
            Run.thread_id == Thread.id,
            Run.tenant_id == Thread.tenant_id,
            col(Run.user_id).is_not(None),
        )
    )
    handled = exists(
        select(ThreadConsolidation.thread_id).where(
            ThreadConsolidation.tenant_id == Thread.tenant_id,
            ThreadConsolidation.thread_id == Thread.id,
            col(ThreadConsolidation.thread_updated_at) >= Thread.updated_at,
            or_(
                col(ThreadConsolidation.status) == "done",
                col(ThreadConsolidation.lease_until) > now,
            ),
        )
    )
    stmt = (
        select(Thread.tenant_id, Thread.id, Thread.updated_at)
        .where(
            col(Thread.status).in_(("idle", "error")),
            col(Thread.updated_at) < idle_before,
            has_user,
            ~handled,
        )
        .order_by(col(Thread.updated_at), col(Thread.id))
        .limit(limit)
    )
    async with db_session() as db:
        return [(t, i, u) for t, i, u in (await db.exec(stmt)).all()]


async def claim(
    tenant_id: str, thread_id: str, version: datetime, *, now: datetime, worker: str
) -> bool:
    """Claim a thread version for this worker (insert, or compare-and-set an old claim)."""
    lease = now + timedelta(seconds=get_settings().consolidate_lease_seconds)
    async with db_session() as db:
        row = await db.get(ThreadConsolidation, (tenant_id, thread_id))
        if row is None:
            db.add(
                ThreadConsolidation(
                    tenant_id=tenant_id,
                    thread_id=thread_id,
                    status="working",
                    thread_updated_at=version,
                    lease_until=lease,
                    claimed_by=worker,
                )
            )
            try:
                await db.commit()
            except IntegrityError:
                return False  # another replica claimed it first
            return True
        current = as_utc(row.thread_updated_at) >= as_utc(version)
        if current and (row.status == "done" or as_utc(row.lease_until) > now):
            return False
        result: Any = await db.exec(
            update(ThreadConsolidation)
            .where(
                and_(
                    col(ThreadConsolidation.tenant_id) == tenant_id,
                    col(ThreadConsolidation.thread_id) == thread_id,
                    col(ThreadConsolidation.status) == row.status,
                    col(ThreadConsolidation.claimed_by) == row.claimed_by,
                    col(ThreadConsolidation.lease_until) == row.lease_until,
                )
            )
            .values(
                status="working", thread_updated_at=version, lease_until=lease, claimed_by=worker
            )
        )
        await db.commit()
        return int(result.rowcount or 0) == 1


async def _user_of(tenant_id: str, thread_id: str) -> str | None:
    async with db_session() as db:
        return (
            await db.exec(
                select(Run.user_id)
                .where(
                    col(Run.tenant_id) == tenant_id,
                    col(Run.thread_id) == thread_id,
                    col(Run.user_id).is_not(None),
                )
                .order_by(col(Run.created_at).desc())
                .limit(1)
            )
        ).first()


async def consolidate_thread(tenant_id: str, thread_id: str, version: datetime, worker: str) -> str:
    """Summarize a claimed thread into its user's memory and mark it done; return the outcome."""
    user_id = await _user_of(tenant_id, thread_id)
    items = await build_session(tenant_id, thread_id).get_items(limit=get_settings().history_limit)
    messages = to_messages(items)
    key: str | None = None
    if user_id is not None and messages:
        summary = await summarize(messages)
        key = memory_key(thread_id)
        await memory.put(
            tenant_id=tenant_id,
            namespace=user_namespace(user_id),
            key=key,
            value={
                "text": summary,
                "kind": "thread_summary",
                "thread_id": thread_id,
                "thread_updated_at": as_utc(version).isoformat(),
            },
        )
    async with db_session() as db:
        result: Any = await db.exec(
            update(ThreadConsolidation)
            .where(
                col(ThreadConsolidation.tenant_id) == tenant_id,
                col(ThreadConsolidation.thread_id) == thread_id,
                col(ThreadConsolidation.status) == "working",
                col(ThreadConsolidation.claimed_by) == worker,
            )
            .values(status="done", memory_key=key, consolidated_at=utcnow())
        )
        await db.commit()
    if int(result.rowcount or 0) != 1:
        return "lease lost (another replica took the thread over)"
    return "summarized" if key else "nothing to summarize"


async def consolidate(*, now: datetime | None = None, worker: str | None = None) -> int:
    """Consolidate every eligible thread, one thread per step; return how many this run did."""
    moment = now or utcnow()
    me = worker or uuid.uuid4().hex
    batch = get_settings().job_batch_size
    done = 0
    seen: set[tuple[str, str]] = set()
    while True:
        found = [c for c in await _candidates(moment, batch) if (c[0], c[1]) not in seen]
        if not found:
            return done
        for tenant_id, thread_id, version in found:
            seen.add((tenant_id, thread_id))
            if not await claim(tenant_id, thread_id, version, now=moment, worker=me):
                continue
            outcome = await consolidate_thread(tenant_id, thread_id, version, me)
            done += 1
            await step_done(NAME, f"thread {thread_id} of tenant {tenant_id}: {outcome}")


def main() -> int:
    """Consolidate idle threads into long-term memory; exit 0 when done."""
    return run_job(consolidate)
