"""HTTP plumbing shared by every function: problem+json errors, bounded JSON bodies, auth."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, RootModel
from starlette.requests import ClientDisconnect

from shared.api import cors
from shared.api.idempotency import idempotent
from shared.api.unstorable import find_unstorable, printable_location
from shared.core.errors import (
    AscentError,
    BadRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
    validated,
)
from shared.core.settings import get_settings
from shared.core.telemetry import install_redaction
from shared.db.availability import RETRY_AFTER_SECONDS, database_unavailable
from shared.platform import observability
from shared.security.auth import Principal

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response with Ascent's stable shape: type, title, status, detail."""
    body = {
        "type": f"urn:ascent:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="ascent"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_from(error: AscentError) -> JSONResponse:
    """Map an Ascent error to its problem response (its detail is written to be safe to show)."""
    response = problem(error.status, error.code, error.title, error.detail, **error.extra)
    if error.status in (429, 503) and "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


def api(handler: Handler) -> Handler:
    """Wrap an HTTP function so every failure becomes problem+json and none leaks internals."""

    route = handler.__name__

    @functools.wraps(handler)
    async def wrapper(req: Request) -> Response:
        install_redaction()  # idempotent; lazily on the first request, never at import
        started = time.perf_counter()
        # The request span: a child of the caller's `traceparent`, the parent of the run.
        parent = observability.extract(req.headers) if observability.active() else None
        with (
            observability.route_scope(route),
            observability.span(
                f"{req.method} {route}",
                kind=observability.SpanKind.SERVER,
                parent=parent,
                attributes={"http.request.method": req.method, "http.route": route},
            ) as current,
        ):
            try:
                refuse_unstorable_params(req)
                response = await idempotent(req, lambda: handler(req), problem_from, read_body)
            except AscentError as error:
                response = problem_from(error)
            except ClientDisconnect:
                # The client went away mid-body (fewer bytes than its Content-Length): its
                # business, not a server fault; nobody reads the answer.
                log.info("client disconnected before sending its body to %s", handler.__name__)
                response = problem(
                    400, "client-disconnect", "Client disconnected", "Body incomplete."
                )
            except Exception as exc:
                if database_unavailable(exc):
                    # The database dropped the connection (restart, failover, a terminated
                    # backend): the pool reconnects by itself, so the client retries shortly.
                    log.warning(
                        "database unavailable in %s: %s", handler.__name__, type(exc).__name__
                    )
                    response = problem_from(DATABASE_DOWN)
                else:
                    log.exception("unhandled error in %s", handler.__name__)
                    response = problem(
                        500, "internal", "Internal error", "The server failed; try again."
                    )
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(observability.Status(observability.StatusCode.ERROR))
        response.headers.update(cors.response_headers(req.headers.get("origin")))
        observability.http_request(
            req.method, route, response.status_code, time.perf_counter() - started
        )
        return response

    return wrapper


DATABASE_DOWN = ServiceUnavailable(
    "The database is not reachable right now; retry shortly.", retry_after=RETRY_AFTER_SECONDS
)


def refuse_unstorable_params(req: Request) -> None:
    """400 when a path or query value holds a NUL (`%00`) or lone surrogate: such a value can
    match no stored row, and Postgres refuses it as a parameter (URL decoding turns invalid
    UTF-8 into U+FFFD, so only NUL normally gets here)."""
    sources: list[tuple[str, Any]] = [
        ("path", dict(req.path_params)),
        ("query", [list(pair) for pair in req.query_params.multi_items()]),
    ]
    for where, values in sources:
        found = find_unstorable(values, [where])
        if found is not None:
            loc = printable_location(found[0])
            # A query location is [query, index, 0 | 1]: name the parameter, not its index.
            name = loc[1] if where == "path" else printable_location([values[int(loc[1])][0]])[0]
            raise BadRequest(
                f"The {where} parameter {name} {found[1]}; such text cannot be stored.",
                errors=[{"loc": [where, name], "msg": found[1], "type": "unstorable_text"}],
            )


async def read_body(req: Request) -> bytes:
    """Read the body, refusing more than ASCENT_MAX_BODY_BYTES before and while reading."""
    limit = get_settings().max_body_bytes
    declared = req.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    body = bytearray()
    async for chunk in req.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    return bytes(body)


async def read_json(req: Request, model: type[ModelT]) -> ModelT:
    """Parse and validate a JSON body: 400 when it is not JSON, 422 when fields are wrong."""
    raw = await read_body(req)
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over Python's digit
        # limit; RecursionError is JSON nested too deeply. Both are the client's malformed body.
        raise BadRequest("The body is not valid JSON.") from None
    # Before the model: text no database can hold is refused for every endpoint alike, and a
    # handler never sees it (so nothing is written first).
    unstorable = find_unstorable(data)
    if unstorable is not None:
        loc, reason = unstorable
        where = printable_location(loc)
        raise BadRequest(
            f"The field {'.'.join(str(p) for p in where) or 'body'} {reason}; "
            "such text cannot be stored.",
            errors=[{"loc": where, "msg": reason, "type": "unstorable_text"}],
        )
    # A list-bodied endpoint declares a RootModel of a list (`POST /runs/batch`).
    if not isinstance(data, dict) and not (isinstance(data, list) and issubclass(model, RootModel)):
        raise ValidationFailed("The body must be a JSON object.")
    return validated(model, data, "The body has missing or invalid fields.")


def unstorable_jsonrpc(raw: bytes) -> JSONResponse | None:
    """For a raw JSON-RPC body (MCP): a 400 JSON-RPC error when it holds text no database can
    store (as `read_json` refuses it everywhere else), else None (the transport parses it)."""
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        return None  # the MCP transport answers malformed JSON itself
    found = find_unstorable(data)
    if found is None:
        return None
    where = ".".join(str(p) for p in printable_location(found[0])) or "body"
    error = {"code": -32602, "message": f"The field {where} {found[1]}; it cannot be stored."}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=400)


async def principal_of(req: Request) -> Principal:
    """Authenticate the request (API key, JWT, trusted ACA principal) and count it (429)."""
    # Function-local for cold start: the JWT stack (PyJWT, cryptography) loads on the first
    # request, not when the host imports function_app.py to index it.
    from shared.security.jwt_auth import authenticate_headers
    from shared.security.ratelimit import enforce_request_rate

    principal = await authenticate_headers(headers=req.headers)
    await enforce_request_rate(principal)
    return principal
