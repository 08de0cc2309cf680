"""The one error hierarchy; HTTP maps it to problem+json, queues re-raise it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")


class AscentError(Exception):
    """Base of every error Ascent raises on purpose; carries a safe, client-facing message."""

    status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(AscentError):
    """The request could not be parsed (malformed JSON, wrong content type)."""

    status, code, title = 400, "bad-request", "Bad request"


class Unauthorized(AscentError):
    """No credentials, or credentials that do not identify a principal."""

    status, code, title = 401, "unauthorized", "Missing or invalid credentials"


class NotFound(AscentError):
    """The resource does not exist for this tenant (also returned for other tenants' ids)."""

    status, code, title = 404, "not-found", "Not found"


class Conflict(AscentError):
    """The request conflicts with the resource's current state."""

    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AscentError):
    """The body exceeds the configured limit."""

    status, code, title = 413, "payload-too-large", "Payload too large"


class ValidationFailed(AscentError):
    """The body parsed but its fields are missing or out of range."""

    status, code, title = 422, "validation-failed", "Validation failed"


def validated(model: type[ModelT], data: Any, message: str) -> ModelT:
    """`model` from `data`, or ValidationFailed (422) listing each wrong field's location and
    reason, never its value (it may be a secret)."""
    # Function-local to keep cold start fast: pydantic's errors load with the first use.
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ValidationFailed(message, errors=errors) from None


class GuardrailTripped(AscentError):
    """An input guardrail refused the input; the run is recorded as an error."""

    status, code, title = 422, "guardrail-tripped", "Input refused by a guardrail"


class UpstreamModelError(AscentError):
    """The model provider failed or behaved unexpectedly."""

    status, code, title = 502, "upstream-model-error", "The model provider failed"


class ConfigError(AscentError):
    """Settings are missing or invalid for the requested operation."""

    status, code, title = 500, "config-error", "Server misconfigured"


class Forbidden(AscentError):
    """The caller is authenticated but may not perform this operation."""

    status, code, title = 403, "forbidden", "Forbidden"


class ServiceUnavailable(AscentError):
    """A backing service did not answer; the operation is safe to retry."""

    status, code, title = 503, "service-unavailable", "Service unavailable"


class RateLimited(AscentError):
    """A request, concurrency or token budget is exhausted; retry after `retry_after` seconds."""

    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=max(1, int(retry_after)), **extra)
        self.retry_after = max(1, int(retry_after))
