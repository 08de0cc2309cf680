"""Domain events: CloudEvents 1.0 written to a transactional outbox, then published in order.

Writing. `record_event(session=..., tenant_id=..., type=..., subject=..., data=...)` adds one
CloudEvent to the `outbox_events` table in the caller's transaction, so the event exists if and
only if the state change it describes commits. Events of one subject (a run) are numbered
`seq` = 1, 2, ... (the CloudEvents `sequence` extension). `stage_event` is the same on a sync
connection (the run engine's units, shared/db/direct.py). A run's terminal event is recorded
with `shared.outbox.webhooks.stage_run_end`, which also owes the run's webhook its delivery in
that transaction.

Types: `run.created`, `run.started`, `run.completed`, `run.failed` (error or timeout; `data`
says which), `run.interrupted`, `run.cancelled`; others (`review.required`, `review.decided`)
go through the same `record_event`.

Publishing (shared/outbox/drain.py). `drain()` publishes due rows in order per subject through
a `Transport`, then delivers due webhooks; a broker outage loses nothing. Delivery is at least
once (a claim that expires mid-publish can repeat an event): subscribers deduplicate by the
CloudEvent `id`.

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
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Protocol

from sqlalchemy import Row, bindparam, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.retries import outbound
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.db.event_models import OutboxEvent
from shared.db.models import Run, new_id, utcnow
from shared.platform import observability

_OUTBOX = OutboxEvent.__table__  # type: ignore[attr-defined]
# Built once (the run engine stages events on every run).
_LAST_SEQ = select(func.max(_OUTBOX.c.seq)).where(_OUTBOX.c.subject == bindparam("subject"))
_INSERT = insert(_OUTBOX)

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
# A background drain waits this long first, so one pass covers concurrent runs' events.
DRAIN_LINGER_SECONDS: Final = 0.05

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


def stage_event(
    conn: Connection,
    *,
    tenant_id: str,
    type: str,
    subject: str,
    data: Json,
    seq: int | None = None,
) -> str:
    """Insert a CloudEvent into the outbox on `conn`, inside the caller's transaction.

    The event's `seq` is one more than the subject's last (read here unless the caller knows
    it, e.g. the first events of a new run); a concurrent writer of the same subject collides
    on the (subject, seq) unique key and its transaction fails, as for any compare-and-set
    loser. Returns the event id. Works on the hot path's sync connections (shared/db/direct.py)
    and, through `record_event`, inside an AsyncSession.
    """
    if seq is None:
        seq = int(conn.execute(_LAST_SEQ, {"subject": subject}).scalar() or 0) + 1
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
    # The CloudEvents distributed-tracing extension: subscribers continue the run's trace.
    parent = observability.traceparent()
    if parent:
        envelope["traceparent"] = parent
    conn.execute(
        _INSERT,
        {
            "id": event_id,
            "tenant_id": tenant_id,
            "subject": subject,
            "seq": seq,
            "type": type,
            "envelope": envelope,
            "created_at": now,
            "attempts": 0,
        },
    )
    return event_id


async def record_event(
    *, session: AsyncSession, tenant_id: str, type: str, subject: str, data: Json
) -> str:
    """`stage_event` in an AsyncSession's transaction (the caller commits); the event id."""

    def stage(sync_session: Session) -> str:
        return stage_event(
            sync_session.connection(), tenant_id=tenant_id, type=type, subject=subject, data=data
        )

    return await session.run_sync(stage)


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


# gRPC codes another attempt may not get; the others (bad topic, denied) are the request's fault.
_TRANSIENT_GRPC: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


def _transient_dapr(exc: Exception) -> bool:
    """A publish timeout, or a Dapr gRPC error whose code is transient."""
    from dapr.clients.exceptions import DaprGrpcError

    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, DaprGrpcError):
        return str(exc.code().name) in _TRANSIENT_GRPC  # type: ignore[no-untyped-call]
    return False


@outbound(on=_transient_dapr)
async def _publish_once(client: Any, data: str) -> None:
    """One `publish_event` to the configured pub/sub and topic, bounded in time."""
    settings = get_settings()
    async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
        await client.publish_event(
            pubsub_name=settings.dapr_pubsub_name,
            topic_name=settings.dapr_topic,
            data=data,
            data_content_type=CLOUDEVENTS_JSON,
        )


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
        """Publish the envelope as a CloudEvent to DAPR_PUBSUB_NAME / DAPR_TOPIC.

        A transient failure (sidecar or broker unavailable, deadline, throttling) is retried a
        few times here (shared/core/retries.py) before the outbox's own backoff takes over:
        publishing is idempotent for subscribers, which deduplicate on the CloudEvent id.
        """
        from dapr.clients.exceptions import DaprGrpcError

        client = await self._connect()
        try:
            await _publish_once(client, json.dumps(envelope))
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


@lru_cache(maxsize=8)
def _subscriber(topic: str) -> Callable[[Any], Awaitable[Any]]:
    """The HTTP function subscribed to `topic` (imported on first use: functions/ is above)."""
    module, name = SUBSCRIPTIONS[topic]
    found: Callable[[Any], Awaitable[Any]] = getattr(importlib.import_module(module), name)
    return found


class InProcessTransport:
    """Delivery to the subscribed HTTP function itself, as Dapr would POST it."""

    name = "inprocess"

    async def publish(self, envelope: Json) -> None:
        """Call each subscription's user function with the CloudEvent as a POST request."""
        from starlette.requests import Request

        topic = get_settings().dapr_topic
        if topic not in SUBSCRIPTIONS:
            return  # nobody subscribes to this topic in-process
        handler = _subscriber(topic)
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


@dataclass
class DrainReport:
    """What one `drain()` did."""

    published: int = 0
    publish_failures: int = 0
    webhooks_delivered: int = 0
    webhook_failures: int = 0
    errors: list[str] = field(default_factory=list)


# --- receiving -----------------------------------------------------------------------------

Handler = Callable[[Json], Awaitable[None]]
_HANDLERS: list[tuple[frozenset[str] | None, Handler]] = []


def has_handlers() -> bool:
    """Whether anything in this process acts on received events."""
    return bool(_HANDLERS)


def subscribe(handler: Handler, *, types: Iterable[str] | None = None) -> Handler:
    """Register a handler for received events (of these types; all when None). Idempotent
    handlers only: delivery is at least once."""
    _HANDLERS.append((frozenset(types) if types is not None else None, handler))
    return handler


def unsubscribe(handler: Handler) -> None:
    """Remove a handler registered with `subscribe`."""
    _HANDLERS[:] = [(t, h) for t, h in _HANDLERS if h is not handler]


def _stored(tx: Tx, event_id: str) -> Row[Any] | None:
    found = select(_OUTBOX.c.type, _OUTBOX.c.subject, _OUTBOX.c.envelope).where(
        _OUTBOX.c.id == event_id
    )
    return tx.conn.execute(found).first()


async def receive_event(envelope: Any) -> str:
    """Handle one delivered CloudEvent; return Dapr's status: SUCCESS, RETRY or DROP."""
    if not isinstance(envelope, dict) or envelope.get("specversion") != SPECVERSION:
        return "DROP"
    event_id, type_, subject = envelope.get("id"), envelope.get("type"), envelope.get("subject")
    if not all(isinstance(v, str) and v for v in (event_id, type_, subject)):
        return "DROP"
    handlers = [h for types, h in _HANDLERS if types is None or type_ in types]
    if not handlers:
        return "SUCCESS"  # nothing here acts on it, so there is nothing to verify it for
    stored_id = str(event_id)
    row = await direct.read(lambda tx: _stored(tx, stored_id))
    if row is None or row.type != type_ or row.subject != subject:
        log.warning("dropped an event that is not in the outbox (id %r)", event_id)
        return "DROP"
    event = dict(row.envelope)  # the stored event, not what the request claimed
    try:
        for handler in handlers:
            await handler(event)
    except Exception:
        log.exception("an event handler failed for %s", event_id)
        return "RETRY"
    return "SUCCESS"
