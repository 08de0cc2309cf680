"""Run webhooks: a signed POST of the run to `RunCreate.webhook` when the run ends.

When a run ends, `stage_run_end` writes its terminal event and, if the run has a webhook, a
`webhook_deliveries` row in the run's transaction, so a crash loses nothing; `drain()`
(shared/outbox/drain.py) then delivers due rows (`deliver_due`), claimed by compare-and-set so
two drainers never send the same attempt twice.

The request is a Standard Webhooks message (https://www.standardwebhooks.com), signed with the
`standardwebhooks` library, so a receiver verifies it with any Standard Webhooks library:
`POST <webhook>` with `Content-Type: application/json`, the body the run in Agent Protocol shape
(as `GET /runs/{run_id}` returns it), and these headers:

- `webhook-id`: the CloudEvent id of the run's terminal event (the same for every retry, so
  receivers can deduplicate);
- `webhook-timestamp`: Unix seconds when the attempt was signed (libraries refuse a timestamp
  more than 5 minutes away, which stops replays);
- `webhook-signature`: `v1,<base64 HMAC-SHA256>` with the tenant's secret over
  `<webhook-id>.<webhook-timestamp>.<raw body>`.

Any 2xx is success; anything else (or no answer within ASCENT_WEBHOOK_TIMEOUT_SECONDS) is
retried with a doubling backoff until ASCENT_WEBHOOK_MAX_ATTEMPTS, then the delivery is
`failed`. Redirects are not followed. Every attempt is recorded on the row (attempts, last
status, last error, next attempt).

SSRF guard: only http and https; the host must resolve to public addresses only (no loopback,
private, link-local, carrier-grade NAT, multicast or reserved ranges) unless
ASCENT_WEBHOOK_ALLOW_PRIVATE=true, which exists for tests and local receivers: in a deployment
it would let any tenant make the service call its internal network (metadata endpoints,
databases, the Dapr sidecar). A refused target is recorded `refused` and never retried. The
check runs on every attempt, just before sending; a DNS answer that changes between the check
and the connection (rebinding) is not covered.

The secret: one per tenant, in the spec's format (`whsec_` + base64 of 32 random bytes),
generated on first use (`webhook_secret`), shown and rotated through the platform admin API. A
secret stored before the move to Standard Webhooks (a bare `token_urlsafe` string) is shown as
`whsec_` + base64 of its UTF-8 bytes: the same HMAC key, so nothing in the database changes.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy import bindparam, insert, or_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import ValidationFailed
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.db.engine import db_session
from shared.db.event_models import TenantWebhookSecret, WebhookDelivery
from shared.db.models import Run, new_id, utcnow
from shared.db.views import run_json
from shared.outbox.events import DrainReport, Json, backoff_seconds, stage_event
from shared.platform import observability

_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SECRET_BYTES: Final = 32
CLAIM_SECONDS: Final = 120.0
MAX_ERROR_CHARS: Final = 500


class WebhookRefused(Exception):
    """The webhook target is not allowed (scheme, or a non-public address)."""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks format: `whsec_` + base64(32 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def as_standard_secret(stored: str) -> str:
    """The stored secret in the spec's format; a pre-standard secret keeps its key bytes."""
    if stored.startswith(SECRET_PREFIX):
        return stored
    return SECRET_PREFIX + base64.b64encode(stored.encode()).decode("ascii")


def signed_headers(secret: str, message_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed at `now` with `secret`."""
    from standardwebhooks import Webhook  # function-local: loaded on the first delivery

    moment = now.replace(microsecond=0)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(moment.timestamp())),
        SIGNATURE_HEADER: Webhook(secret).sign(message_id, moment, body.decode()),
    }


def check_scheme(url: str) -> None:
    """Refuse anything but an absolute http(s) URL with a host (422 at run creation)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("webhook must be an absolute http or https URL.")


def _allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str) -> None:
    """Raise WebhookRefused unless the URL is http(s) and its host resolves to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("only absolute http and https URLs are allowed")
    if get_settings().webhook_allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=0, proto=0)
    except OSError as exc:
        raise WebhookRefused(f"the host does not resolve ({type(exc).__name__})") from exc
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_allowed(a) for a in addresses):
        raise WebhookRefused("the host resolves to a private, loopback or reserved address")


_UNKNOWN: Final = object()
_WEBHOOK_OF = (
    Run.__table__.select()  # type: ignore[attr-defined]
    .with_only_columns(Run.__table__.c.webhook)  # type: ignore[attr-defined]
    .where(
        Run.__table__.c.id == bindparam("run_id"),  # type: ignore[attr-defined]
        Run.__table__.c.tenant_id == bindparam("tenant_id"),  # type: ignore[attr-defined]
    )
)
_INSERT_DELIVERY = insert(_DELIVERIES)


def stage_run_end(
    conn: Connection,
    *,
    tenant_id: str,
    run_id: str,
    type: str,
    data: Json,
    seq: int | None = None,
    webhook: str | None | object = _UNKNOWN,
) -> str:
    """Record a run's terminal event on `conn` and owe its webhook a delivery (same transaction).

    Every end of a run goes through here (the run engine's outcome, a cancel, an expired
    review, a dead-lettered message), so a run with a webhook always gets its POST. The caller
    that has the run passes its `webhook`; otherwise it is read.
    """
    event_id = stage_event(conn, tenant_id=tenant_id, type=type, subject=run_id, data=data, seq=seq)
    url = webhook
    if url is _UNKNOWN:
        url = conn.execute(_WEBHOOK_OF, {"run_id": run_id, "tenant_id": tenant_id}).scalar()
    if isinstance(url, str) and url:
        conn.execute(
            _INSERT_DELIVERY,
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "event_id": event_id,
                "run_id": run_id,
                "url": url,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": utcnow(),
                "created_at": utcnow(),
            },
        )
    return event_id


async def record_run_end(
    *, session: AsyncSession, tenant_id: str, run_id: str, type: str, data: Json
) -> str:
    """`stage_run_end` in an AsyncSession's transaction (the caller commits)."""

    def stage(sync_session: Session) -> str:
        return stage_run_end(
            sync_session.connection(), tenant_id=tenant_id, run_id=run_id, type=type, data=data
        )

    return await session.run_sync(stage)


async def webhook_secret(tenant_id: str) -> str:
    """The tenant's signing secret, created on first use (racing creators agree on one)."""
    async with db_session() as db:
        row = await db.get(TenantWebhookSecret, tenant_id)
        if row is not None:
            return as_standard_secret(row.secret)
        db.add(TenantWebhookSecret(tenant_id=tenant_id, secret=new_secret()))
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
    async with db_session() as db:
        row = await db.get(TenantWebhookSecret, tenant_id)
    if row is None:
        raise LookupError(f"no tenant {tenant_id!r}")
    return as_standard_secret(row.secret)


async def rotate_webhook_secret(tenant_id: str) -> str:
    """Replace the tenant's secret with a new one (takes effect on the next attempt)."""
    await webhook_secret(tenant_id)
    fresh = new_secret()
    async with db_session() as db:
        await db.exec(
            update(TenantWebhookSecret)
            .where(col(TenantWebhookSecret.tenant_id) == tenant_id)
            .values(secret=fresh, created_at=utcnow())
        )
        await db.commit()
    return fresh


async def _claim(delivery_id: str, owner: str) -> bool:
    now = utcnow()
    stmt = (
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.status) == "pending",
            or_(
                col(WebhookDelivery.claimed_until).is_(None),
                col(WebhookDelivery.claimed_until) < now,
            ),
        )
        .values(claimed_by=owner, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    async with db_session() as db:
        result: Any = await db.exec(stmt)
        await db.commit()
    return int(result.rowcount) == 1


async def _record(delivery: WebhookDelivery, owner: str, **values: Any) -> None:
    async with db_session() as db:
        await db.exec(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == delivery.id, col(WebhookDelivery.claimed_by) == owner)
            .values(claimed_by=None, claimed_until=None, **values)
        )
        await db.commit()


async def _body(delivery: WebhookDelivery) -> bytes | None:
    async with db_session() as db:
        run = (
            await db.exec(
                select(Run).where(
                    col(Run.id) == delivery.run_id, col(Run.tenant_id) == delivery.tenant_id
                )
            )
        ).first()
    if run is None:
        return None
    return json.dumps(run_json(run), separators=(",", ":")).encode()


async def attempt(delivery: WebhookDelivery, owner: str) -> bool:
    """Make one attempt of a claimed delivery and record it; True when delivered."""
    settings = get_settings()
    attempts = delivery.attempts + 1
    try:
        await check_target(delivery.url)
    except WebhookRefused as exc:
        log.warning("webhook %s refused: %s", delivery.id, exc)
        await _record(delivery, owner, status="refused", attempts=attempts, last_error=str(exc))
        return False
    body = await _body(delivery)
    if body is None:
        await _record(delivery, owner, status="failed", attempts=attempts, last_error="run deleted")
        return False
    secret = await webhook_secret(delivery.tenant_id)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ascent-Webhooks/2",
        **signed_headers(secret, delivery.event_id, body, datetime.now(UTC)),
    }
    status: int | None = None
    error: str | None = None
    try:
        with observability.span(
            "webhook deliver",
            kind=observability.SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "ascent.webhook.delivery_id": delivery.id,
                "ascent.tenant.id": delivery.tenant_id,
            },
        ) as current:
            # The receiver may continue the trace (W3C `traceparent` header).
            headers.update(observability.inject())
            async with httpx.AsyncClient(
                timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
            ) as client:
                response = await client.post(delivery.url, content=body, headers=headers)
            current.set_attribute("http.response.status_code", response.status_code)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    if error is None:
        await _record(
            delivery,
            owner,
            status="delivered",
            attempts=attempts,
            last_status=status,
            last_error=None,
            delivered_at=utcnow(),
        )
        return True
    done = attempts >= settings.webhook_max_attempts
    await _record(
        delivery,
        owner,
        status="failed" if done else "pending",
        attempts=attempts,
        last_status=status,
        last_error=error[:MAX_ERROR_CHARS],
        next_attempt_at=utcnow() + timedelta(seconds=backoff_seconds(attempts)),
    )
    return False


def _any_due(tx: Tx) -> bool:
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    due = select(table.c.id).where(table.c.status == "pending", table.c.next_attempt_at <= utcnow())
    return tx.conn.execute(due.limit(1)).first() is not None


async def deliver_due(*, owner: str, report: DrainReport, limit: int = 100) -> None:
    """Attempt every due pending delivery once (each claimed by compare-and-set first)."""
    # Every drain asks; almost always nothing is due, and this read costs no session.
    if not await direct.read(_any_due):
        return
    now = utcnow()
    stmt = (
        select(WebhookDelivery)
        .where(
            col(WebhookDelivery.status) == "pending",
            col(WebhookDelivery.next_attempt_at) <= now,
            or_(
                col(WebhookDelivery.claimed_until).is_(None),
                col(WebhookDelivery.claimed_until) < now,
            ),
        )
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(limit)
    )
    async with db_session() as db:
        due = list((await db.exec(stmt)).all())
    for delivery in due:
        if not await _claim(delivery.id, owner):
            continue
        try:
            delivered = await attempt(delivery, owner)
        except Exception as exc:  # a bug or a database hiccup: the claim expires, retried later
            log.exception("webhook delivery %s failed", delivery.id)
            report.errors.append(type(exc).__name__)
            delivered = False
        if delivered:
            report.webhooks_delivered += 1
        else:
            report.webhook_failures += 1


async def list_deliveries(*, tenant_id: str, run_id: str) -> list[WebhookDelivery]:
    """A run's webhook deliveries (for inspection and tests)."""
    async with db_session() as db:
        stmt = select(WebhookDelivery).where(
            col(WebhookDelivery.tenant_id) == tenant_id, col(WebhookDelivery.run_id) == run_id
        )
        return list((await db.exec(stmt)).all())
