"""`Idempotency-Key` on every POST: a retried request gets the first answer and runs once.

As Stripe and the IETF draft (draft-ietf-httpapi-idempotency-key-header) define it: a client
sends `Idempotency-Key: <1-255 printable ASCII characters>` with a POST; the first request
with that key runs and its answer is stored; a retry with the same key and the same request
(method, path, query and body) gets that answer back, with `Idempotent-Replayed: true`, and
runs nothing. The `api` and `openai_api` wrappers apply it to every POST of every route, so a
new route is covered without an edit.

- **Scope**: keys are per tenant (the admin API's are the platform's): two tenants may use the
  same key. A request that does not authenticate is not tracked (it is answered 401 anyway).
- **Reuse** of a key with a different request: 422 (OpenAI routes: 400). **Concurrent** retry
  while the first still runs: 409 with Retry-After.
- **Stored answers**: every answer below 500, including 4xx problems. A 5xx is not stored (the
  key is released), so the client's retry runs again: a 5xx means the request did not take
  effect (or failed before its effect; runs executed in a request that fails are ended).
- **Streams** (SSE) cannot be replayed: a retry of a streamed request answers 409 with the
  first answer's `Content-Location` (the run to join) instead of running a second time.
- **Expiry**: a key is kept ASCENT_IDEMPOTENCY_TTL_HOURS (24 by default) after its first use;
  after that the key is new again. `purge_retention` deletes expired keys.
- **A first request whose process died** holds its key until ASCENT_RUN_TIMEOUT_SECONDS + 60 s
  after it started (no request can still be running then); a retry after that runs again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.core.errors import AscentError, BadRequest, Conflict, ValidationFailed
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.db.idempotency_models import IdempotencyKey
from shared.db.models import utcnow
from shared.db.types import as_utc

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")
KEYS: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
# Headers of an answer that describe this delivery, not the answer: not stored.
_NOT_STORED = frozenset(
    {"content-length", "date", "server", "vary", "transfer-encoding", "connection"}
)

Render = Callable[[AscentError], Response]


@dataclass(frozen=True)
class _Claim:
    """What claiming the key found: None (it is ours now) or the stored row."""

    row: Any | None


def _lock_seconds() -> float:
    return get_settings().run_timeout_seconds + 60.0


def _claim(tx: Tx, *, scope: str, key: str, fingerprint: str, now: datetime) -> _Claim:
    """Insert the key as pending, or return the row already there (an expired row, or a
    pending row whose holder died, is taken over with a compare-and-set)."""
    values = {
        "scope": scope,
        "key": key,
        "fingerprint": fingerprint,
        "status": "pending",
        "streamed": False,
        "created_at": now,
        "expires_at": now + timedelta(hours=get_settings().idempotency_ttl_hours),
        "locked_until": now + timedelta(seconds=_lock_seconds()),
    }
    try:
        with tx.conn.begin_nested():
            tx.conn.execute(insert(KEYS), values)
        return _Claim(None)
    except IntegrityError:
        pass
    where = (KEYS.c.scope == scope, KEYS.c.key == key)
    row = tx.conn.execute(select(KEYS).where(*where)).first()
    if row is None:  # deleted meanwhile (a 5xx released it): ours on the next try
        return _claim(tx, scope=scope, key=key, fingerprint=fingerprint, now=now)
    expired = as_utc(row.expires_at) <= now
    lapsed = row.status == "pending" and as_utc(row.locked_until) <= now
    if expired or (lapsed and row.fingerprint == fingerprint):
        taken = tx.conn.execute(
            update(KEYS)
            .where(*where, KEYS.c.expires_at == row.expires_at, KEYS.c.status == row.status)
            .values(**{k: v for k, v in values.items() if k not in ("scope", "key")})
        ).rowcount
        if taken == 1:
            return _Claim(None)
        row = tx.conn.execute(select(KEYS).where(*where)).first()
    return _Claim(row)


def _store(tx: Tx, *, scope: str, key: str, response: Response, streamed: bool) -> None:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_STORED}
    tx.conn.execute(
        update(KEYS)
        .where(KEYS.c.scope == scope, KEYS.c.key == key)
        .values(
            status="done",
            response_status=response.status_code,
            response_headers=headers,
            response_body=None if streamed else bytes(response.body),
            streamed=streamed,
            locked_until=None,
        )
    )


def _release(tx: Tx, *, scope: str, key: str) -> None:
    tx.conn.execute(delete(KEYS).where(KEYS.c.scope == scope, KEYS.c.key == key))


def purge_expired(tx: Tx, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired keys; how many were deleted."""
    expired = select(KEYS.c.scope, KEYS.c.key).where(KEYS.c.expires_at <= now).limit(limit)
    rows = tx.conn.execute(expired).all()
    for scope, key in rows:
        tx.conn.execute(delete(KEYS).where(KEYS.c.scope == scope, KEYS.c.key == key))
    return len(rows)


async def _scope(req: Request) -> str | None:
    """The key's scope: the caller's tenant, `platform` for the admin key, None when the
    request does not authenticate (its handler answers that)."""
    # Function-local for cold start, as in shared.api.http.principal_of.
    from shared.security.jwt_auth import authenticate_headers
    from shared.security.tenancy import require_admin

    try:
        principal = await authenticate_headers(headers=req.headers)
        return principal.tenant_id
    except AscentError:
        pass
    try:
        require_admin(req.headers.get("authorization"))
        return "platform"
    except AscentError:
        return None


def _fingerprint(req: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (req.method.encode(), req.url.path.encode(), req.url.query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(row: Any) -> Response:
    headers = dict(row.response_headers or {})
    if row.streamed:
        # A stream cannot be sent twice; point at what it streamed (the run) instead.
        extra = {k: v for k, v in headers.items() if k.lower() in ("content-location", "location")}
        where = extra.get("content-location") or extra.get("location")
        raise Conflict(
            "The first request with this Idempotency-Key streamed its answer, which cannot "
            "be replayed; join the run it started (Content-Location) instead.",
            **({"location": where} if where else {}),
        )
    response = Response(
        content=row.response_body or b"", status_code=int(row.response_status or 200)
    )
    response.headers.update(headers)
    response.headers[REPLAYED] = "true"
    return response


async def idempotent(
    req: Request,
    call: Callable[[], Awaitable[Response]],
    render: Render,
    read_body: Callable[[Request], Awaitable[bytes]],
) -> Response:
    """Answer `req` through its Idempotency-Key (see the module docstring); `call` runs the
    handler, `render` turns an Ascent error into this route's error answer, `read_body` reads
    the body within the size limit (shared.api.http's)."""
    key = req.headers.get(HEADER)
    if key is None or req.method != "POST":
        return await call()
    if not KEY_SHAPE.match(key):
        raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters without spaces.")
    scope = await _scope(req)
    if scope is None:
        return await call()
    body = await read_body(req)
    # Starlette's stream() yields a body already read from `_body`: the handler reads it again.
    req._body = body
    fingerprint = _fingerprint(req, body)
    now = utcnow()
    claim = await direct.write(
        lambda tx: _claim(tx, scope=scope, key=key, fingerprint=fingerprint, now=now)
    )
    if claim.row is not None:
        row = claim.row
        if row.fingerprint != fingerprint:
            raise ValidationFailed(
                f"This {HEADER} was used for a different request; use a new key.",
                errors=[{"loc": ["header", HEADER], "msg": "key reused", "type": "idempotency"}],
            )
        if row.status == "pending":
            raise Conflict(
                f"A request with this {HEADER} is still being processed; retry later.",
            )
        return _replay(row)
    try:
        try:
            response = await call()
        except AscentError as error:
            if error.status >= 500:
                raise
            response = render(error)
    except BaseException:
        await direct.write(lambda tx: _release(tx, scope=scope, key=key))
        raise
    if response.status_code >= 500:
        await direct.write(lambda tx: _release(tx, scope=scope, key=key))
        return response
    streamed = not hasattr(response, "body")
    await direct.write(
        lambda tx: _store(tx, scope=scope, key=key, response=response, streamed=streamed)
    )
    return response


__all__ = ["HEADER", "idempotent", "purge_expired"]
