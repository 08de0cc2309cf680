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
from pydantic import BaseModel, RootModel, ValidationError

from shared.api import cors
from shared.core.errors import (
    AscentError,
    BadRequest,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.core.settings import get_settings
from shared.core.telemetry import install_redaction
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
    if error.status == 429 and "retry_after" in error.extra:
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
                response = await handler(req)
            except AscentError as error:
                response = problem_from(error)
            except Exception:
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
    # A list-bodied endpoint declares a RootModel of a list (`POST /runs/batch`).
    if not isinstance(data, dict) and not (isinstance(data, list) and issubclass(model, RootModel)):
        raise ValidationFailed("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Report where and why, never the offending value (it may be a secret).
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ValidationFailed("The body has missing or invalid fields.", errors=errors) from None


async def principal_of(req: Request) -> Principal:
    """Authenticate the request (API key, JWT, trusted ACA principal) and count it (429)."""
    # Function-local for cold start: the JWT stack (PyJWT, cryptography) loads on the first
    # request, not when the host imports function_app.py to index it.
    from shared.security.jwt_auth import authenticate_headers
    from shared.security.ratelimit import enforce_request_rate

    principal = await authenticate_headers(headers=req.headers)
    await enforce_request_rate(principal)
    return principal
