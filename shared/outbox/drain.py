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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.event_models import OutboxEvent, WebhookDelivery
from shared.db.models import new_id, utcnow
from shared.db.views import aware
from shared.outbox.events import (
    CLAIM_SECONDS,
    DRAIN_HORIZON_SECONDS,
    MAX_DRAIN_ROUNDS,
    MIN_DRAIN_PAUSE_SECONDS,
    DrainReport,
    Json,
    PublishFailed,
    Transport,
    backoff_seconds,
    build_transport,
)
from shared.outbox.webhooks import deliver_due

log = logging.getLogger(__name__)


def drainer_id() -> str:
    """A name for this drainer in claims: host, process and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id()[:8]}"


async def due_heads(*, limit: int = 100) -> list[OutboxEvent]:
    """Unpublished, unclaimed, due events that are the first unpublished one of their subject."""
    now = utcnow()
    earlier = aliased(OutboxEvent)
    blocked = exists().where(
        col(earlier.subject) == col(OutboxEvent.subject),
        col(earlier.seq) < col(OutboxEvent.seq),
        col(earlier.published_at).is_(None),
    )
    stmt = (
        select(OutboxEvent)
        .where(
            col(OutboxEvent.published_at).is_(None),
            ~blocked,
            or_(
                col(OutboxEvent.next_attempt_at).is_(None), col(OutboxEvent.next_attempt_at) <= now
            ),
            or_(col(OutboxEvent.claimed_until).is_(None), col(OutboxEvent.claimed_until) < now),
        )
        .order_by(col(OutboxEvent.created_at), col(OutboxEvent.seq))
        .limit(limit)
    )
    async with db_session() as db:
        return list((await db.exec(stmt)).all())


async def _claim_event(event_id: str, owner: str) -> bool:
    now = utcnow()
    stmt = (
        update(OutboxEvent)
        .where(
            col(OutboxEvent.id) == event_id,
            col(OutboxEvent.published_at).is_(None),
            or_(col(OutboxEvent.claimed_until).is_(None), col(OutboxEvent.claimed_until) < now),
        )
        .values(claimed_by=owner, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    async with db_session() as db:
        result: Any = await db.exec(stmt)
        await db.commit()
    return int(result.rowcount) == 1


async def _settle_event(event_id: str, owner: str, *, error: str | None) -> None:
    """Mark a claimed event published (error None) or give it back with a backoff."""
    async with db_session() as db:
        row = await db.get(OutboxEvent, event_id)
        if row is None or row.claimed_by != owner:
            return
        values: Json = {"claimed_by": None, "claimed_until": None, "attempts": row.attempts + 1}
        if error is None:
            values |= {"published_at": utcnow(), "last_error": None}
        else:
            delay = backoff_seconds(row.attempts + 1)
            values |= {"last_error": error, "next_attempt_at": utcnow() + timedelta(seconds=delay)}
        await db.exec(
            update(OutboxEvent)
            .where(col(OutboxEvent.id) == event_id, col(OutboxEvent.claimed_by) == owner)
            .values(**values)
        )
        await db.commit()


async def publish_due(
    transport: Transport, *, owner: str, report: DrainReport, limit: int = 100
) -> None:
    """Publish due events, subject by subject in `seq` order, until none is left or one fails.

    A failure stops the pass (the broker is likely down): the failed row waits its backoff and
    blocks its subject's later events, so nothing overtakes it.
    """
    while True:
        heads = await due_heads(limit=limit)
        progressed = False
        for row in heads:
            if not await _claim_event(row.id, owner):
                continue  # another drainer has it
            try:
                await transport.publish(row.envelope)
            except Exception as exc:  # every failure leaves the row for a later drain
                reason = str(exc) if isinstance(exc, PublishFailed) else type(exc).__name__
                await _settle_event(row.id, owner, error=reason)
                report.publish_failures += 1
                report.errors.append(reason)
                log.warning("publishing event %s failed: %s", row.id, reason)
                return
            await _settle_event(row.id, owner, error=None)
            report.published += 1
            progressed = True
        if not progressed:
            return


async def drain(*, owner: str | None = None, limit: int = 100) -> DrainReport:
    """One drain: publish every due outbox event (in order per subject), deliver due webhooks."""
    owner = owner or drainer_id()
    report = DrainReport()
    transport = build_transport()
    if transport is not None:
        try:
            await publish_due(transport, owner=owner, report=report, limit=limit)
        finally:
            await transport.close()
    await deliver_due(owner=owner, report=report, limit=limit)
    return report


async def next_due_in() -> float | None:
    """Seconds until the earliest pending publish or webhook attempt (None: nothing pending)."""
    moments: list[datetime] = []
    async with db_session() as db:
        if get_settings().events_publish != "off":
            unpublished = col(OutboxEvent.published_at).is_(None)
            first = (
                await db.exec(select(func.min(OutboxEvent.next_attempt_at)).where(unpublished))
            ).one()
            now_due = (
                await db.exec(
                    select(OutboxEvent.id)
                    .where(unpublished, col(OutboxEvent.next_attempt_at).is_(None))
                    .limit(1)
                )
            ).first()
            if now_due is not None:
                return 0.0
            if first is not None:
                moments.append(first)
        hook = (
            await db.exec(
                select(func.min(WebhookDelivery.next_attempt_at)).where(
                    col(WebhookDelivery.status) == "pending"
                )
            )
        ).one()
        if hook is not None:
            moments.append(hook)
    if not moments:
        return None
    earliest = min(aware(m) for m in moments)
    return max(0.0, (earliest - utcnow()).total_seconds())


# One background drainer per process and event loop; a request arriving while it runs asks it
# to go round once more instead of starting another.
_drainer: asyncio.Task[None] | None = None
_again = False


async def _drain_loop() -> None:
    global _again
    rounds = 0
    while rounds < MAX_DRAIN_ROUNDS:
        rounds += 1
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
