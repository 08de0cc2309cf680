"""User-defined scheduled runs (LangGraph's crons): firing them (the API is shared/api/crons.py).

A cron runs an agent with a fixed input on a 5-field cron schedule evaluated in UTC, either on
one thread (`POST /threads/{thread_id}/runs/crons`: every run joins that conversation) or
stateless (`POST /runs/crons`: every run gets a new thread, deleted when the run ends unless
`on_run_completed` is `keep`). Crons are tenant-scoped like every other resource.

Firing exactly once, without locks (the `dispatch_crons` job; DESIGN.md decision 4). For a due
cron (`next_run_at <= now`) the dispatcher, in ONE transaction:

1. advances `next_run_at` with a compare-and-set on its old value
   (`UPDATE crons SET next_run_at = :following WHERE id = :id AND next_run_at = :seen`);
   a replica that loses the race updates no row and moves on;
2. inserts the `cron_fires` row keyed by (cron_id, scheduled_for): a second guard, so an
   occurrence can never fire twice even if `next_run_at` were moved back;
3. inserts the pending run through the Agent Protocol run path (`shared.api.protocol.new_run` and
   `stage_run`, multitask strategy `enqueue`, so a busy thread queues it).

Only after the commit is the run handed to `shared.runs.dispatch.enqueue_run`, and the fire marked
enqueued. A replica that crashes before the commit leaves nothing (the next pass fires the
occurrence); one that crashes after it leaves a pending run whose fire is not marked
enqueued, which the next pass enqueues again (executing a run is idempotent). Clock skew between
replicas cannot double-fire either: whichever replica's clock says "due" first wins the
compare-and-set; the others see the advanced `next_run_at`.

Who a cron acts as. A cron's runs act as its creator, with the thread access the creator had
(shared/security/thread_access.py): a user's cron runs as that user (its new threads are theirs,
and a thread cron stops - like one whose thread was deleted - once the user no longer sees the
thread); a cron created by an API key acts as that key, tenant-wide; a tenant admin's cron
keeps tenant-wide access until it is deleted. Crons stored before thread owners existed keep
acting tenant-wide, as they did. Users search and delete their own crons and the crons of
threads they see.

Missed occurrences (the dispatcher was down, or paused across several ticks): the policy is
to fire the LATEST missed occurrence once and skip the older ones, never once per missed tick
and never once per replica. The skipped count is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from shared.core.settings import get_settings
from shared.db import repo
from shared.db.direct import Tx
from shared.db.engine import db_session
from shared.db.jobs_models import Cron, CronFire
from shared.db.models import Run, new_id, utcnow
from shared.db.views import aware
from shared.platform import observability
from shared.runs import records, service
from shared.runs.records import NewRun
from shared.security import thread_access
from shared.security.auth import Principal

log = logging.getLogger(__name__)

Json = dict[str, Any]
MAX_PAGE = 1000
# A fire committed but not marked enqueued for this long is taken as a crashed dispatcher's.
ENQUEUE_GRACE = timedelta(seconds=60)
# Bound on the missed occurrences counted for the log line (not on catching up: that is one).
_MAX_COUNTED = 10_000


# --- schedules -------------------------------------------------------------------------------


def validate_schedule(schedule: str) -> str:
    """A standard 5-field cron expression (UTC), as ACA Jobs take; ValueError otherwise."""
    text = " ".join(schedule.split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ValueError("schedule must be a 5-field cron expression, e.g. '*/15 * * * *' (UTC)")
    return text


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first occurrence strictly after `after` (UTC)."""
    found: datetime = croniter(schedule, aware(after).astimezone(UTC)).get_next(datetime)
    return found.astimezone(UTC)


def latest_occurrence(schedule: str, now: datetime) -> datetime:
    """The last occurrence at or before `now` (UTC; cron has minute resolution)."""
    moment = aware(now).astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    found: datetime = croniter(schedule, moment).get_prev(datetime)
    return found.astimezone(UTC)


def missed_between(schedule: str, first: datetime, last: datetime) -> int:
    """How many occurrences lie in [first, last) (the ones the catch-up policy skips)."""
    count = 0
    moment = aware(first)
    it = croniter(schedule, moment - timedelta(seconds=1))
    while count < _MAX_COUNTED:
        occurrence: datetime = it.get_next(datetime)
        if occurrence >= aware(last):
            break
        count += 1
    return count


# --- dispatch --------------------------------------------------------------------------------


def acting_principal(cron: Cron) -> Principal:
    """Who the cron's runs act as: its creator, with the thread access the creator had."""
    payload = cron.payload or {}
    if "tenant_admin" not in payload:
        # Stored before thread owners existed: it keeps the tenant-wide access it had.
        return Principal(
            tenant_id=cron.tenant_id,
            key_id=f"cron:{cron.id}",
            user_id=cron.user_id,
            tenant_admin=True,
        )
    owner = payload.get("owner_id")
    if not isinstance(owner, str):
        # Created by an API key, whose id `cron.user_id` holds: act as that key (its runs'
        # user_id, hence their memory, stays the key's).
        return Principal(tenant_id=cron.tenant_id, key_id=cron.user_id or f"cron:{cron.id}")
    return Principal(
        tenant_id=cron.tenant_id,
        key_id=f"cron:{cron.id}",
        user_id=owner,
        tenant_admin=payload.get("tenant_admin") is True,
    )


@dataclass(frozen=True, slots=True)
class Fired:
    """One occurrence this dispatcher fired (run_id None when the cron could not run)."""

    cron_id: str
    tenant_id: str
    scheduled_for: datetime
    run_id: str | None
    skipped: int


async def fire(cron: Cron, *, now: datetime) -> Fired | None:
    """Fire the cron's latest due occurrence; None when another dispatcher fired it first.

    In a span of its own: the run it enqueues (`traceparent` in the message) is its child.
    """
    with observability.span(
        "cron fire",
        attributes={"ascent.cron.id": cron.id, "ascent.tenant.id": cron.tenant_id},
    ) as current:
        fired = await _fire(cron, now=now)
        current.set_attribute("ascent.cron.fired", fired is not None)
        if fired is not None:
            current.set_attribute("ascent.run.id", fired.run_id)
            observability.cron_fired(1)
        return fired


async def _fire(cron: Cron, *, now: datetime) -> Fired | None:
    seen = cron.next_run_at
    if seen is None:
        return None
    scheduled_for = max(latest_occurrence(cron.schedule, now), aware(seen))
    skipped = missed_between(cron.schedule, aware(seen), scheduled_for)
    following: datetime | None = next_occurrence(cron.schedule, scheduled_for)
    if cron.end_time is not None and following is not None and following > aware(cron.end_time):
        following = None
    principal = acting_principal(cron)
    payload = cron.payload or {}
    run = None
    error: str | None = None
    async with db_session() as db:
        claimed: Any = await db.exec(
            update(Cron)
            .where(col(Cron.id) == cron.id, col(Cron.next_run_at) == seen)
            .values(next_run_at=following, updated_at=utcnow())
        )
        if int(claimed.rowcount or 0) != 1:
            await db.rollback()
            return None  # another dispatcher advanced it
        tid = cron.thread_id
        thread = (
            await repo.get_thread(session=db, tenant_id=cron.tenant_id, thread_id=tid)
            if tid is not None
            else None
        )
        if tid is not None and thread is None:
            error = "thread deleted"
            await db.exec(update(Cron).where(col(Cron.id) == cron.id).values(next_run_at=None))
        elif thread is not None and not await thread_access.can_see(db, principal, thread):
            # Its creator no longer sees the thread (a grant was revoked): stop, as if deleted.
            error = "thread not accessible"
            await db.exec(update(Cron).where(col(Cron.id) == cron.id).values(next_run_at=None))
        else:
            if tid is None:
                owner = payload.get("owner_id")
                thread = await repo.create_thread(
                    session=db,
                    tenant_id=cron.tenant_id,
                    metadata={"cron_id": cron.id},
                    owner_id=owner if isinstance(owner, str) else None,
                )
                tid = thread.id
            items = list(payload.get("input") or [])
            on_completion = payload.get("on_completion")
            new = NewRun(
                run_id=new_id(),
                tenant_id=cron.tenant_id,
                agent=cron.agent,
                input_text="\n".join(
                    str(i.get("content")) for i in items if i.get("role") == "user"
                ),
                input_items=items,
                entry_point="cron",
                user_id=principal.user_id or principal.key_id,
                thread_id=tid,
                metadata={
                    **(cron.metadata_ or {}),
                    "cron_id": cron.id,
                    "scheduled_for": scheduled_for.isoformat(),
                },
                config=payload.get("config") or {},
                on_completion=on_completion if isinstance(on_completion, str) else "delete",
                multitask_strategy="enqueue",
            )
            created = await db.run_sync(lambda s: records.create_run(Tx(s.connection()), new))
            run = created.run
        db.add(
            CronFire(
                cron_id=cron.id,
                scheduled_for=scheduled_for,
                tenant_id=cron.tenant_id,
                run_id=run.id if run is not None else None,
                error=error,
            )
        )
        try:
            await db.commit()
        except IntegrityError:
            return None  # this occurrence was fired already: the unique key refused it
    if skipped:
        log.warning(
            "cron %s: %d missed occurrence(s) skipped; fired the latest (%s) once",
            cron.id,
            skipped,
            scheduled_for.isoformat(),
        )
    if run is not None:
        await _enqueue(cron.id, scheduled_for, run)
    return Fired(cron.id, cron.tenant_id, scheduled_for, run.id if run else None, skipped)


async def _enqueue(cron_id: str, scheduled_for: datetime, run: Any) -> None:
    await service.enqueue(run)
    async with db_session() as db:
        await db.exec(
            update(CronFire)
            .where(col(CronFire.cron_id) == cron_id, col(CronFire.scheduled_for) == scheduled_for)
            .values(enqueued_at=utcnow())
        )
        await db.commit()


async def recover_unenqueued() -> int:
    """Enqueue the runs of fires a crashed dispatcher committed but never handed on."""
    stale = utcnow() - ENQUEUE_GRACE
    async with db_session() as db:
        rows = (
            await db.exec(
                select(CronFire).where(
                    col(CronFire.enqueued_at).is_(None),
                    col(CronFire.run_id).is_not(None),
                    col(CronFire.created_at) < stale,
                )
            )
        ).all()
    count = 0
    for row in rows:
        async with db_session() as db:
            run = await db.get(Run, row.run_id)
        if run is not None and run.status == "pending":
            await _enqueue(row.cron_id, row.scheduled_for, run)
            count += 1
        else:
            async with db_session() as db:
                await db.exec(
                    update(CronFire)
                    .where(
                        col(CronFire.cron_id) == row.cron_id,
                        col(CronFire.scheduled_for) == row.scheduled_for,
                    )
                    .values(enqueued_at=utcnow())
                )
                await db.commit()
    return count


async def dispatch_due(
    *,
    now: datetime | None = None,
    on_fired: Callable[[Fired], Awaitable[None]] | None = None,
) -> list[Fired]:
    """Fire every cron due at `now` (default: the clock) once; return what this caller fired.

    `now` is a parameter so tests move time instead of sleeping; the dispatch job passes
    nothing. `on_fired` runs after each committed fire (the job's step report).
    """
    moment = aware(now) if now is not None else utcnow()
    batch = get_settings().job_batch_size
    fired: list[Fired] = []
    tried: set[str] = set()
    while True:
        async with db_session() as db:
            due = (
                await db.exec(
                    select(Cron)
                    .where(col(Cron.next_run_at).is_not(None), col(Cron.next_run_at) <= moment)
                    .order_by(col(Cron.next_run_at), col(Cron.id))
                    .limit(batch)
                )
            ).all()
        todo = [c for c in due if c.id not in tried]
        if not todo:
            return fired
        for cron in todo:
            tried.add(cron.id)
            done = await fire(cron, now=moment)
            if done is not None:
                fired.append(done)
                if on_fired is not None:
                    await on_fired(done)
