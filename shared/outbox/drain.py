"""Draining the outbox: publish due domain events in order, then deliver due webhooks.

`drain()` publishes due rows (shared/outbox/events.py) and delivers due webhooks
(shared/outbox/webhooks.py); it runs in the background right after a commit on this instance
(`drain_soon()`, best effort) and every minute as the `drain_outbox` ACA job. Per subject only
the lowest unpublished `seq` is eligible; a drainer claims a row by compare-and-set
(`claimed_until`, no advisory locks), marks it published only after the broker accepted it, and
on failure leaves it with a doubling backoff (ASCENT_EVENTS_RETRY_SECONDS); so per-run order
holds and a broker outage loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

from sqlalchemy import Table, exists, func, or_, select, update

from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.db.event_models import OutboxEvent, WebhookDelivery
from shared.db.models import new_id, utcnow
from shared.db.views import aware
from shared.outbox.events import (
    CLAIM_SECONDS,
    DRAIN_HORIZON_SECONDS,
    DRAIN_LINGER_SECONDS,
    MAX_DRAIN_ROUNDS,
    MIN_DRAIN_PAUSE_SECONDS,
    DrainReport,
    InProcessTransport,
    Json,
    PublishFailed,
    Transport,
    backoff_seconds,
    build_transport,
    has_handlers,
)
from shared.outbox.webhooks import deliver_due
from shared.platform import observability

log = logging.getLogger(__name__)

OUTBOX: Final[Table] = OutboxEvent.__table__  # type: ignore[attr-defined]
HOOKS: Final[Table] = WebhookDelivery.__table__  # type: ignore[attr-defined]


def drainer_id() -> str:
    """A name for this drainer in claims: host, process and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id()[:8]}"


@dataclass(frozen=True, slots=True)
class Due:
    """An event due for publishing: the first unpublished one of its subject."""

    id: str
    subject: str
    seq: int
    attempts: int
    envelope: Json


def _unclaimed(now: datetime) -> Any:
    return or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now)


def due_heads(tx: Tx, *, limit: int = 100) -> list[Due]:
    """Unpublished, unclaimed, due events that are the first unpublished one of their subject."""
    now = utcnow()
    earlier = OUTBOX.alias("earlier")
    blocked = exists().where(
        earlier.c.subject == OUTBOX.c.subject,
        earlier.c.seq < OUTBOX.c.seq,
        earlier.c.published_at.is_(None),
    )
    rows = tx.conn.execute(
        select(OUTBOX.c.id, OUTBOX.c.subject, OUTBOX.c.seq, OUTBOX.c.attempts, OUTBOX.c.envelope)
        .where(
            OUTBOX.c.published_at.is_(None),
            ~blocked,
            or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now),
            _unclaimed(now),
        )
        .order_by(OUTBOX.c.created_at, OUTBOX.c.seq)
        .limit(limit)
    )
    return [Due(r.id, r.subject, r.seq, r.attempts, r.envelope) for r in rows]


def due_events(tx: Tx, *, limit: int = 100) -> list[Due]:
    """The due heads (`due_heads`), each followed by the later events of its subject that are
    due and unclaimed too, in `seq` order: one pass publishes a run's events together."""
    heads = due_heads(tx, limit=limit)
    if not heads:
        return []
    now = utcnow()
    rows = tx.conn.execute(
        select(
            OUTBOX.c.id,
            OUTBOX.c.subject,
            OUTBOX.c.seq,
            OUTBOX.c.attempts,
            OUTBOX.c.envelope,
            OUTBOX.c.next_attempt_at,
            OUTBOX.c.claimed_until,
        )
        .where(OUTBOX.c.subject.in_([h.subject for h in heads]), OUTBOX.c.published_at.is_(None))
        .order_by(OUTBOX.c.subject, OUTBOX.c.seq)
    )
    later: dict[str, list[Due]] = {}
    stopped: set[str] = set()
    for r in rows:
        waiting = r.next_attempt_at is not None and aware(r.next_attempt_at) > now
        claimed = r.claimed_until is not None and aware(r.claimed_until) >= now
        if r.subject in stopped or waiting or claimed:
            stopped.add(r.subject)  # what follows must wait for this one
            continue
        later.setdefault(r.subject, []).append(Due(r.id, r.subject, r.seq, r.attempts, r.envelope))
    due: list[Due] = []
    for head in heads:
        run = later.get(head.subject, [])
        due.extend(run if run and run[0].id == head.id else [head])
    return due


def claim(tx: Tx, ids: list[str], owner: str) -> set[str]:
    """Claim these events by compare-and-set; the ids this drainer now holds."""
    now = utcnow()
    tx.conn.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), OUTBOX.c.published_at.is_(None), _unclaimed(now))
        .values(claimed_by=owner, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    held = select(OUTBOX.c.id).where(OUTBOX.c.id.in_(ids), OUTBOX.c.claimed_by == owner)
    return set(tx.conn.scalars(held))


@dataclass
class Settlement:
    """What one pass did with its claimed events, written back in one transaction."""

    published: list[str]
    failed: Due | None = None
    error: str = ""
    untried: tuple[str, ...] = ()


def settle(tx: Tx, done: Settlement, owner: str) -> None:
    """Mark published events, back off the failed one, and give back the claims not tried."""
    now = utcnow()
    mine = OUTBOX.c.claimed_by == owner
    released: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
    if done.published:
        tx.conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(done.published), mine)
            .values(**released, attempts=OUTBOX.c.attempts + 1, published_at=now, last_error=None)
        )
    if done.failed is not None:
        delay = backoff_seconds(done.failed.attempts + 1)
        tx.conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == done.failed.id, mine)
            .values(
                **released,
                attempts=OUTBOX.c.attempts + 1,
                last_error=done.error,
                next_attempt_at=now + timedelta(seconds=delay),
            )
        )
    if done.untried:
        tx.conn.execute(
            update(OUTBOX).where(OUTBOX.c.id.in_(done.untried), mine).values(**released)
        )


def mark_published(tx: Tx) -> int:
    """Mark every unclaimed unpublished event published; how many."""
    now = utcnow()
    done = tx.conn.execute(
        update(OUTBOX)
        .where(OUTBOX.c.published_at.is_(None), _unclaimed(now))
        .values(published_at=now, attempts=OUTBOX.c.attempts + 1, last_error=None)
    )
    return int(done.rowcount)


def _publish_span(envelope: Any) -> Any:
    """The span of one CloudEvent's publish, a child of the trace the event was staged in."""
    carried = envelope.get("traceparent") if isinstance(envelope, dict) else None
    return observability.span(
        f"{envelope.get('type', 'event') if isinstance(envelope, dict) else 'event'} publish",
        kind=observability.SpanKind.PRODUCER,
        parent=observability.extract({observability.TRACEPARENT: carried}) if carried else None,
        attributes={
            "messaging.operation.type": "send",
            "cloudevents.event_id": str(
                envelope.get("id", "") if isinstance(envelope, dict) else ""
            ),
        },
    )


async def publish_due(
    transport: Transport, *, owner: str, report: DrainReport, limit: int = 100
) -> None:
    """Publish due events, subject by subject in `seq` order, until none is left or one fails.

    Each pass reads the due events (`due_events`), claims them in one transaction, publishes
    them one by one and writes the results back in one transaction. A failure stops the pass
    (the broker is likely down): the failed row waits its backoff and blocks its subject's
    later events, so nothing overtakes it.
    """
    while True:
        due = await direct.read(lambda tx: due_events(tx, limit=limit))
        if not due:
            return
        held = await direct.write(partial(claim, ids=[row.id for row in due], owner=owner))
        mine: list[Due] = []
        skipped: list[str] = []
        lost: set[str] = set()  # subjects with an event another drainer holds
        for row in due:
            if row.subject in lost or row.id not in held:
                lost.add(row.subject)  # its later events must wait for that drainer
                if row.id in held:
                    skipped.append(row.id)
                continue
            mine.append(row)
        done = Settlement(published=[], untried=tuple(skipped))
        for index, row in enumerate(mine):
            try:
                # A producer span in the event's own trace (its `traceparent`: the run's).
                with _publish_span(row.envelope):
                    await transport.publish(row.envelope)
            except Exception as exc:  # every failure leaves the row for a later drain
                reason = str(exc) if isinstance(exc, PublishFailed) else type(exc).__name__
                done.failed, done.error = row, reason
                done.untried += tuple(r.id for r in mine[index + 1 :])
                report.publish_failures += 1
                report.errors.append(reason)
                log.warning("publishing event %s failed: %s", row.id, reason)
                break
            done.published.append(row.id)
        if held:
            await direct.write(partial(settle, done=done, owner=owner))
        report.published += len(done.published)
        if done.failed is not None or not done.published:
            return


async def drain(*, owner: str | None = None, limit: int = 100) -> DrainReport:
    """One drain: publish every due outbox event (in order per subject), deliver due webhooks."""
    owner = owner or drainer_id()
    report = DrainReport()
    transport = build_transport()
    if isinstance(transport, InProcessTransport) and not has_handlers():
        # Delivered in-process to a subscription that acts on nothing: recording the delivery
        # is all publishing would do, so it is done in one statement.
        report.published += await direct.write(mark_published)
    elif transport is not None:
        try:
            await publish_due(transport, owner=owner, report=report, limit=limit)
        finally:
            await transport.close()
    await deliver_due(owner=owner, report=report, limit=limit)
    return report


def _next_due_in(tx: Tx, *, events: bool) -> float | None:
    moments: list[datetime] = []
    if events:
        unpublished = OUTBOX.c.published_at.is_(None)
        now_due = tx.conn.execute(
            select(OUTBOX.c.id).where(unpublished, OUTBOX.c.next_attempt_at.is_(None)).limit(1)
        ).first()
        if now_due is not None:
            return 0.0
        first = tx.conn.scalar(select(func.min(OUTBOX.c.next_attempt_at)).where(unpublished))
        if first is not None:
            moments.append(first)
    hook = tx.conn.scalar(
        select(func.min(HOOKS.c.next_attempt_at)).where(HOOKS.c.status == "pending")
    )
    if hook is not None:
        moments.append(hook)
    if not moments:
        return None
    earliest = min(aware(m) for m in moments)
    return max(0.0, (earliest - utcnow()).total_seconds())


async def next_due_in() -> float | None:
    """Seconds until the earliest pending publish or webhook attempt (None: nothing pending)."""
    events = get_settings().events_publish != "off"
    return await direct.read(lambda tx: _next_due_in(tx, events=events))


# One background drainer per process and event loop; a request arriving while it runs asks it
# to go round once more instead of starting another.
_drainer: asyncio.Task[None] | None = None
_again = False


async def _drain_loop() -> None:
    global _again
    rounds = 0
    while rounds < MAX_DRAIN_ROUNDS:
        rounds += 1
        # Let the commits of concurrent runs gather, so one pass publishes all their events.
        await asyncio.sleep(DRAIN_LINGER_SECONDS)
        _again = False
        try:
            await drain()
            wait = await next_due_in()
        except Exception:
            log.exception("background outbox drain failed")
            return
        if _again:
            continue
        if wait is None or wait > DRAIN_HORIZON_SECONDS:
            return  # the drain_outbox job picks up what is due later
        await asyncio.sleep(max(wait, MIN_DRAIN_PAUSE_SECONDS))


def drain_soon() -> None:
    """After a commit: drain the outbox in the background on this instance (best effort)."""
    global _drainer, _again
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop (a sync caller): the drain_outbox job will publish
    if _drainer is not None and not _drainer.done() and _drainer.get_loop() is loop:
        _again = True
        return
    _drainer = loop.create_task(_drain_loop(), name="outbox-drain")


async def wait_for_background_drain() -> None:
    """Wait for this process's background drain (tests and shutdown)."""
    task = _drainer
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        await task
