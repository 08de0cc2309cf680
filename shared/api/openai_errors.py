"""Errors of the OpenAI-compatible API (`/v1/*`) in OpenAI's shape, not problem+json.

Every failure of a `/v1/*` handler answers `application/json`:

    {"error": {"message": str, "type": str, "param": str | null, "code": str | null}}

which the official `openai` clients parse into their `APIStatusError` subclasses
(`BadRequestError`, `AuthenticationError`, `NotFoundError`, `ConflictError`, ...). The status
is Ascent's, except that invalid fields (Ascent's 422) are 400 as in OpenAI's API. `type` is
OpenAI's category (`invalid_request_error`, `authentication_error`, `permission_error`,
`not_found_error`, `conflict_error`, `rate_limit_error`, `server_error`); `code` is Ascent's
stable problem code (`not-found`, `validation-failed`, `guardrail-tripped`, ...); `param` names
the first invalid field (dotted) when there is one. Extra details of an Ascent error (the
tripped `guardrail`, the `errors` list of a validation failure) are additional members of
`error`, which OpenAI clients ignore.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from shared.api import cors
from shared.api.http import Handler, read_body, refuse_unstorable_params
from shared.api.idempotency import idempotent
from shared.core.errors import AscentError
from shared.core.telemetry import install_redaction

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIErrorDetail(BaseModel):
    """The `error` member of an OpenAI error body."""

    model_config = ConfigDict(extra="allow", title="OpenAIErrorDetail")

    message: str = Field(description="What went wrong; safe to show to users.")
    type: str = Field(description="OpenAI's error category, e.g. `invalid_request_error`.")
    param: str | None = Field(None, description="The invalid request field, when there is one.")
    code: str | None = Field(None, description="Ascent's stable problem code, e.g. `not-found`.")


class OpenAIError(BaseModel):
    """Every 4xx and 5xx answer of `/v1/*`: OpenAI's error shape."""

    model_config = ConfigDict(title="OpenAIError")

    error: OpenAIErrorDetail


def status_of(error: AscentError) -> int:
    """The HTTP status of an Ascent error on `/v1/*` (422 becomes OpenAI's 400)."""
    return 400 if error.status == 422 else error.status


def error_body(status: int, message: str, code: str | None, **extra: Any) -> dict[str, Any]:
    """An OpenAI error body; `extra` adds members to `error` (a validation's `errors`)."""
    param: str | None = None
    errors = extra.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        loc = [str(p) for p in errors[0].get("loc", [])]
        param = ".".join(loc) or None
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}


def openai_error(error: AscentError) -> JSONResponse:
    """The OpenAI-shaped answer to an Ascent error."""
    status = status_of(error)
    response = JSONResponse(error_body(status, error.detail, error.code, **error.extra), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ascent"'
    if status in (429, 503) and "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


def openai_api(handler: Handler) -> Handler:
    """Wrap a `/v1/*` function: every failure becomes an OpenAI error, none leaks internals."""

    @functools.wraps(handler)
    async def wrapper(req: Request) -> Response:
        install_redaction()  # idempotent; lazily on the first request, never at import
        try:
            refuse_unstorable_params(req)
            response = await idempotent(req, lambda: handler(req), openai_error, read_body)
        except AscentError as error:
            response = openai_error(error)
        except ClientDisconnect:
            # The client went away mid-body: its business, not a server fault (no traceback).
            log.info("client disconnected before sending its body to %s", handler.__name__)
            response = JSONResponse(error_body(400, "Body incomplete.", "client_disconnect"), 400)
        except Exception:
            log.exception("unhandled error in %s", handler.__name__)
            body = error_body(500, "The server failed; try again.", "internal")
            response = JSONResponse(body, status_code=500)
        response.headers.update(cors.response_headers(req.headers.get("origin")))
        return response

    return wrapper
