"""CORS for browser clients on another origin, off unless ASCENT_CORS_ORIGINS names them.

One place for every stage: the `api` wrapper (shared/api/http.py) adds the response headers to
every answer of an allowed origin, and the catch-all route (functions/fallback_http.py) answers
preflight `OPTIONS` requests, so the dev host, the Functions container and ACA behave alike
without a platform CORS setting. Credentials are not allowed: the API takes bearer tokens in
`Authorization`, which a preflight permits, not cookies.
"""

from __future__ import annotations

from shared.core.settings import get_settings

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
# Headers a browser client sends: auth, JSON, stream resumption, Agent Protocol's thread id.
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Thread-Id, Idempotency-Key"
# Headers a browser script may read from answers (pagination, run locations, rate limits).
EXPOSED_HEADERS = "Content-Location, Location, Retry-After, X-Thread-Id"


def allowed_origins() -> frozenset[str]:
    """The configured origins (`*` for any); empty when CORS is off."""
    raw = get_settings().cors_origins
    return frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def origin_allowed(origin: str | None) -> bool:
    """Whether a request's Origin may read the API's answers."""
    if not origin:
        return False
    origins = allowed_origins()
    return "*" in origins or origin.rstrip("/") in origins


def response_headers(origin: str | None) -> dict[str, str]:
    """Headers for an answer to `origin` (none when CORS is off or the origin is not allowed)."""
    if not origin_allowed(origin):
        return {}
    assert origin is not None
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str | None) -> dict[str, str]:
    """Headers for a preflight `OPTIONS` answer (none when the origin is not allowed)."""
    base = response_headers(origin)
    if not base:
        return {}
    return base | {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(get_settings().cors_max_age_seconds),
    }
