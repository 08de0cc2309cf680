"""Domain events: CloudEvents 1.0 written to a transactional outbox, then published in order.

Writing. `record_event(session=..., tenant_id=..., type=..., subject=..., data=...)` adds one
CloudEvent to the `outbox_events` table in the caller's transaction, so the event exists if and
only if the state change it describes commits. Events of one subject (a run) are numbered
`seq` = 1, 2, ... (the CloudEvents `sequence` extension); a terminal `run.*` event of a run with
a `webhook` also adds its `webhook_deliveries` row (shared/webhooks.py) in that transaction.

Types: `run.created`, `run.started`, `run.completed`, `run.failed` (error or timeout; `data`
says which), `run.interrupted`, `run.cancelled`; others (`review.required`, `review.decided`)
go through the same `record_event`.

Publishing. `drain()` publishes due rows and delivers due webhooks; it runs right after a
commit on the request path (`drain_soon()`, a background task, best effort) and every minute as
the `drain_outbox` ACA job. Per subject only the lowest unpublished `seq` is eligible, a drainer
claims a row by compare-and-set (`claimed_until`, no advisory locks), marks it published only
after the broker accepted it, and on failure leaves it with a doubling backoff
(ASCENT_EVENTS_RETRY_SECONDS); so per-run order holds and a broker outage loses nothing.
Delivery is at least once (a claim that expires mid-publish can repeat an event): subscribers
deduplicate by the CloudEvent `id`.

Transport (ASCENT_EVENTS_PUBLISH=auto): through the Dapr sidecar's pub/sub
(`DaprClient.publish_event` to DAPR_PUBSUB_NAME / DAPR_TOPIC, content type
`application/cloudevents+json`, so Dapr keeps our envelope) when DAPR_HTTP_PORT/DAPR_GRPC_PORT
are set; otherwise in-process: the subscription's HTTP function (the route Dapr would call, see
local/components/subscription.yaml) is called directly with the CloudEvent as its request. That
needs no URL, port or credentials, works the same in the dev host, a job process or a test, and
runs exactly the code Dapr would reach. `off`: this process publishes nothing (ACA Jobs have no
sidecar) and only delivers webhooks.

Receiving. `receive_event(envelope)` is what the subscription function runs: it accepts only
events it finds in the outbox (same id, type and subject; the route is reachable by anyone who
can reach the app, so a forged event is dropped) and hands them to the handlers registered with
`subscribe()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import exists, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import db_session
from shared.db.event_models import OutboxEvent
from shared.db.models import Run, new_id, utcnow
from shared.settings import get_settings

log = logging.getLogger(__name__)

SPECVERSION: Final = "1.0"
CLOUDEVENTS_JSON: Final = "application/cloudevents+json"

RUN_CREATED: Final = "run.created"
RUN_STARTED: Final = "run.started"
RUN_COMPLETED: Final = "run.completed"
RUN_FAILED: Final = "run.failed"
RUN_INTERRUPTED: Final = "run.interrupted"
RUN_CANCELLED: Final = "run.cancelled"
REVIEW_REQUIRED: Final = "review.required"
REVIEW_DECIDED: Final = "review.decided"
# A run's last event: each one owes the run's webhook (if any) a POST.
TERMINAL_RUN_EVENTS: Final = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_INTERRUPTED, RUN_CANCELLED})

# The subscriptions in-process delivery serves: topic -> (module, user function). The same route
# as local/components/subscription.yaml (tests check they agree).
SUBSCRIPTIONS: Final = {"agent-events": ("functions.events_http", "agent_events")}
SUBSCRIPTION_ROUTE: Final = "/api/events/agent-events"

# How long a drainer's claim on a row lasts (longer than one publish or webhook attempt).
CLAIM_SECONDS: Final = 120.0
PUBLISH_TIMEOUT_SECONDS: Final = 10.0
MAX_BACKOFF_SECONDS: Final = 300.0
# drain_soon keeps retrying in the background while something is due within this horizon.
DRAIN_HORIZON_SECONDS: Final = 30.0
MAX_DRAIN_ROUNDS: Final = 50
MIN_DRAIN_PAUSE_SECONDS: Final = 0.05

Json = dict[str, Any]


def run_event_type(status: str, error: str | None) -> str:
    """The CloudEvent type of a run that ended with this status (and error)."""
    if status == "success":
        return RUN_COMPLETED
    if status == "interrupted":
        return RUN_CANCELLED if error == "cancelled" else RUN_INTERRUPTED
    return RUN_FAILED


def run_event_data(run: Run, *, status: str, error: str | None = None) -> Json:
    """The `data` of a `run.*` event: ids, agent and the status the run moved to."""
    data: Json = {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "agent_id": run.agent,
        "status": status,
    }
    if error is not None:
        data["error"] = error
    return data


def backoff_seconds(attempts: int) -> float:
    """Delay before the next attempt after `attempts` failures: doubling, capped at 5 minutes."""
    base = get_settings().events_retry_seconds
    return float(min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempts - 1)))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def record_event(
    *, session: AsyncSession, tenant_id: str, type: str, subject: str, data: Json
) -> OutboxEvent:
    """Add a CloudEvent to the outbox in the caller's transaction (commit is the caller's).

    The event's `seq` is one more than the subject's last; a concurrent writer of the same
    subject collides on the (subject, seq) unique key and its transaction fails, as for any
    compare-and-set loser. A terminal run event also owes the run's webhook a delivery.
    """
    last = (
        await session.exec(
            select(func.max(OutboxEvent.seq)).where(col(OutboxEvent.subject) == subject)
        )
    ).one()
    seq = int(last or 0) + 1
    now = utcnow()
    event_id = new_id()
    envelope: Json = {
        "specversion": SPECVERSION,
        "id": event_id,
        "source": f"/ascent/tenants/{tenant_id}",
        "type": type,
        "subject": subject,
        "time": _iso(now),
        "datacontenttype": "application/json",
        "sequence": str(seq),
        "tenantid": tenant_id,
        "data": data,
    }
    row = OutboxEvent(
        id=event_id,
        tenant_id=tenant_id,
        subject=subject,
        seq=seq,
        type=type,
        envelope=envelope,
        created_at=now,
    )
    session.add(row)
    if type in TERMINAL_RUN_EVENTS:
        from shared.webhooks import owe_webhook

        await owe_webhook(session=session, tenant_id=tenant_id, run_id=subject, event_id=event_id)
    await session.flush()
    return row


# --- publishing ----------------------------------------------------------------------------


class PublishFailed(Exception):
    """The transport did not accept an event (broker or sidecar down, subscriber asked to retry)."""


class Transport(Protocol):
    """Where published events go: the Dapr sidecar, or the subscribed functions in-process."""

    name: str

    async def publish(self, envelope: Json) -> None:
        """Hand one CloudEvent over; raise PublishFailed unless it was accepted."""

    async def close(self) -> None:
        """Release what the transport holds."""


class DaprTransport:
    """Dapr pub/sub through the sidecar's gRPC API (`DaprClient.publish_event`)."""

    name = "dapr"

    def __init__(self) -> None:
        """No I/O yet: the client is built on the first publish."""
        self._client: Any = None

    async def _connect(self) -> Any:
        if self._client is None:
            from dapr.aio.clients import DaprClient
            from dapr.clients.health import DaprHealth

            # The constructor waits for the sidecar synchronously; wait in a thread first so a
            # missing sidecar never blocks the event loop (the constructor's check then passes).
            try:
                await asyncio.to_thread(DaprHealth.wait_for_sidecar)
            except Exception as exc:
                raise PublishFailed(f"sidecar unavailable: {type(exc).__name__}") from exc
            self._client = DaprClient()
        return self._client

    async def publish(self, envelope: Json) -> None:
        """Publish the envelope as a CloudEvent to DAPR_PUBSUB_NAME / DAPR_TOPIC."""
        from dapr.clients.exceptions import DaprGrpcError

        settings = get_settings()
        client = await self._connect()
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await client.publish_event(
                    pubsub_name=settings.dapr_pubsub_name,
                    topic_name=settings.dapr_topic,
                    data=json.dumps(envelope),
                    data_content_type=CLOUDEVENTS_JSON,
                )
        except DaprGrpcError as exc:
            code = exc.code()  # type: ignore[no-untyped-call]
            raise PublishFailed(f"dapr {code.name}") from exc
        except TimeoutError as exc:
            raise PublishFailed("dapr publish timed out") from exc

    async def close(self) -> None:
        """Close the gRPC channel (if one was opened)."""
        if self._client is not None:
            await self._client.close()
            self._client = None


class InProcessTransport:
    """Delivery to the subscribed HTTP function itself, as Dapr would POST it."""

    name = "inprocess"

    async def publish(self, envelope: Json) -> None:
        """Call each subscription's user function with the CloudEvent as a POST request."""
        import importlib

        from starlette.requests import Request

        topic = get_settings().dapr_topic
        if topic not in SUBSCRIPTIONS:
            return  # nobody subscribes to this topic in-process
        module, name = SUBSCRIPTIONS[topic]
        handler = getattr(importlib.import_module(module), name)
        body = json.dumps(envelope).encode()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": SUBSCRIPTION_ROUTE,
            "raw_path": SUBSCRIPTION_ROUTE.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", CLOUDEVENTS_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
            "path_params": {},
        }
        response = await handler(Request(scope, receive))
        status = ""
        if 200 <= response.status_code < 300:
            try:
                status = str(json.loads(bytes(response.body)).get("status", "SUCCESS"))
            except (ValueError, AttributeError):
                status = "SUCCESS"
        if status not in ("SUCCESS", "DROP"):
            raise PublishFailed(f"subscriber answered {response.status_code} {status}".strip())

    async def close(self) -> None:
        """Nothing to release."""


def build_transport() -> Transport | None:
    """The transport this process publishes through (None: ASCENT_EVENTS_PUBLISH=off)."""
    settings = get_settings()
    if settings.events_publish == "off":
        return None
    if settings.dapr_http_port and settings.dapr_grpc_port:
        return DaprTransport()
    return InProcessTransport()


def drainer_id() -> str:
    """A name for this drainer in claims: host, process and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id()[:8]}"


@dataclass
class DrainReport:
    """What one `drain()` did."""

    published: int = 0
    publish_failures: int = 0
    webhooks_delivered: int = 0
    webhook_failures: int = 0
    errors: list[str] = field(default_factory=list)


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
    from shared.webhooks import deliver_due

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
    from shared.db.event_models import WebhookDelivery
    from shared.runs import aware

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


# --- receiving -----------------------------------------------------------------------------

Handler = Callable[[Json], Awaitable[None]]
_HANDLERS: list[tuple[frozenset[str] | None, Handler]] = []


def subscribe(handler: Handler, *, types: Iterable[str] | None = None) -> Handler:
    """Register a handler for received events (of these types; all when None). Idempotent
    handlers only: delivery is at least once."""
    _HANDLERS.append((frozenset(types) if types is not None else None, handler))
    return handler


def unsubscribe(handler: Handler) -> None:
    """Remove a handler registered with `subscribe`."""
    _HANDLERS[:] = [(t, h) for t, h in _HANDLERS if h is not handler]


async def receive_event(envelope: Any) -> str:
    """Handle one delivered CloudEvent; return Dapr's status: SUCCESS, RETRY or DROP."""
    if not isinstance(envelope, dict) or envelope.get("specversion") != SPECVERSION:
        return "DROP"
    event_id, type_, subject = envelope.get("id"), envelope.get("type"), envelope.get("subject")
    if not all(isinstance(v, str) and v for v in (event_id, type_, subject)):
        return "DROP"
    async with db_session() as db:
        row = await db.get(OutboxEvent, event_id)
    if row is None or row.type != type_ or row.subject != subject:
        log.warning("dropped an event that is not in the outbox (id %r)", event_id)
        return "DROP"
    event = dict(row.envelope)  # the stored event, not what the request claimed
    try:
        for types, handler in list(_HANDLERS):
            if types is None or type_ in types:
                await handler(event)
    except Exception:
        log.exception("an event handler failed for %s", event_id)
        return "RETRY"
    return "SUCCESS"
