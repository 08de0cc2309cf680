"""Retries of idempotent outbound calls with `stamina`: bounded, jittered, instrumented.

Used where a call had no retry of its own: the JWKS fetch (shared/security/jwt_auth.py), Dapr
publish (shared/outbox/events.py) and embeddings (shared/memory/embeddings.py, whose OpenAI client
has its own retries turned off so attempts do not multiply). Model calls (shared/platform/llm.py)
keep the OpenAI client's built-in retries (2, jittered, on connection errors and 408/409/429/5xx):
moving them here would mean wrapping the Agents SDK's `Model`, whose class the SDK inspects.
Never around a tool call: a tool may charge, refund or write, and a retry could do that twice.

The policy (`ATTEMPTS` attempts at most, within `TIMEOUT_SECONDS`, exponential backoff from
`WAIT_INITIAL_SECONDS` to `WAIT_MAX_SECONDS` with jitter) comes from stamina; each retry goes
through `on_retry`, which logs it (a warning naming the call, the attempt, the wait and the
error's type, never its message, which may hold a URL or a payload) and counts it in
`retry_counts()`. Tests switch stamina to its testing mode (`stamina.set_testing`): no waits,
the same number of attempts.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

if TYPE_CHECKING:
    from stamina.instrumentation import RetryDetails

log = logging.getLogger(__name__)

ATTEMPTS: Final = 3
TIMEOUT_SECONDS: Final = 20.0
WAIT_INITIAL_SECONDS: Final = 0.2
WAIT_MAX_SECONDS: Final = 2.0
# HTTP answers worth another attempt: timeouts, conflicts on a busy resource, throttling, and
# server-side failures. 4xx otherwise means the request itself is wrong.
RETRYABLE_STATUSES: Final = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

P = ParamSpec("P")
T = TypeVar("T")

_COUNTS: Counter[str] = Counter()
_installed = False


def on_retry(details: RetryDetails) -> None:
    """Log one scheduled retry and count it under the call's name."""
    _COUNTS[details.name] += 1
    log.warning(
        "retrying %s (attempt %d of %d) in %.2fs after %s",
        details.name,
        details.retry_num + 1,
        ATTEMPTS,
        details.wait_for,
        type(details.caused_by).__name__,
    )


def retry_counts() -> dict[str, int]:
    """Retries scheduled so far in this process, per call name."""
    return dict(_COUNTS)


def _install() -> None:
    """Make `on_retry` stamina's only hook (once; stamina's own logging would repeat it)."""
    global _installed
    if not _installed:
        from stamina.instrumentation import RetryHook, set_on_retry_hooks

        hook: RetryHook = on_retry
        set_on_retry_hooks([hook])
        _installed = True


def outbound(
    on: type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool],
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate an idempotent async outbound call to retry on `on` with the shared policy.

    stamina (and tenacity under it) load on the first call, not at import: modules the app
    imports at cold start use this decorator.
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        retried: list[Callable[P, Awaitable[T]]] = []

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            if not retried:
                import stamina

                _install()
                retried.append(
                    stamina.retry(
                        on=on,
                        attempts=ATTEMPTS,
                        timeout=TIMEOUT_SECONDS,
                        wait_initial=WAIT_INITIAL_SECONDS,
                        wait_max=WAIT_MAX_SECONDS,
                    )(fn)
                )
            return await retried[0](*args, **kwargs)

        return call

    return decorate


def retryable_http(exc: Exception) -> bool:
    """An httpx transport failure, or an HTTP status that another attempt may not get."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUSES
    return isinstance(exc, httpx.TransportError)


def retryable_openai(exc: Exception) -> bool:
    """An OpenAI-client error worth another attempt: no connection, a timeout, 408/409/429/5xx."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUSES
    return False
