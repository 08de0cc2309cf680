"""Per-tenant and per-key budgets: requests per minute, concurrent runs, tokens per UTC day.

Requests per minute use a **moving window** (`limits`' `MovingWindowRateLimiter`): a request is
allowed when fewer than the limit were allowed in the 60 s before it, so no 60 s span ever holds
more than the limit (a fixed window let up to 2x through across its boundary). Retry-After is
the time until the oldest counted request leaves the window. The window costs one timestamp per
allowed request per key, at most `limit` of them.

Where the counters live, the first that is configured: `REDIS_URL` (`limits`' Redis storage over
redis-py, shared by every instance); Upstash (`UPSTASH_REDIS_REST_URL` and
`UPSTASH_REDIS_REST_TOKEN`: the same Lua scripts over the REST API, shared/platform/
upstash_limits.py, one HTTP round trip per check); otherwise process memory (`limits`' memory
storage; exact for the single-process embedded stage only).

Concurrency slots and the tokens-per-day budget are Ascent's own and stay as they were: a slot
counter per tenant, and a fixed UTC-day token counter (a day boundary is midnight UTC, by design).

Defaults (0 disables a limit): ASCENT_RATE_LIMIT_PER_MINUTE=600 per tenant,
ASCENT_KEY_RATE_LIMIT_PER_MINUTE=300 per key or user, ASCENT_MAX_CONCURRENT_RUNS=10 per tenant,
ASCENT_TOKENS_PER_DAY=2000000 per tenant. A tenant's row in `tenant_limits` overrides any of
them (shared/security/tenant_limits.py: cached, so a check does no extra I/O; a change applies
within 5 s everywhere). Over a limit: RateLimited (429 + Retry-After).

Counter-store outage decision: **fail open**. Durable state never lives there, and refusing every
request because a counter store is down turns a cache outage into a full outage; the outage is
logged as a warning, and the per-request body/input/turn limits still bound each request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from shared.core.errors import RateLimited
from shared.core.services import service
from shared.core.settings import get_settings
from shared.platform.cache import connect
from shared.security.auth import Principal
from shared.security.tenant_limits import effective_limits

if TYPE_CHECKING:
    from shared.security.moving_window import MovingWindow

log = logging.getLogger(__name__)

MINUTE = 60
DAY = 86_400
# A crashed instance cannot release its run slots; they expire after this long in Redis.
SLOT_TTL_SECONDS = 3600
KEY_PREFIX = "ascent:rl:"  # the moving windows' keys: shared/security/moving_window.py


class Limiter(Protocol):
    """Counter storage: moving request windows, fixed token windows and concurrency slots."""

    async def hit(self, key: str, limit: int, window: int) -> int:
        """Count one request in the moving window; 0 when allowed, else seconds to wait."""
        ...

    async def add(self, key: str, amount: int, window: int) -> tuple[int, int]:
        """Add to the current fixed window's counter; return (total, seconds until it ends)."""
        ...

    async def acquire(self, key: str, limit: int) -> bool:
        """Take one of `limit` slots; False when none is free."""
        ...

    async def release(self, key: str) -> None:
        """Give back a slot taken by `acquire`."""
        ...


def _window(now: float, window: int) -> tuple[int, int]:
    index = int(now // window)
    return index, max(1, math.ceil((index + 1) * window - now))


class MemoryLimiter:
    """In-process counters (one instance only); the clock is injectable for tests.

    The moving window is `limits`' MemoryStorage, which stamps entries with `time.time()`;
    tests that step a fake clock patch that too (tests/integration/test_security_ratelimit.py).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """Start with no counters."""
        # Function-local (here and in the other limiters): `limits` loads on first use, not
        # at import, to keep cold start fast.
        from shared.security.moving_window import memory_window

        self.clock = clock
        self._window: MovingWindow = memory_window(clock)
        self._counts: dict[tuple[str, int], int] = {}
        self._slots: dict[str, int] = {}

    async def hit(self, key: str, limit: int, window: int) -> int:
        """Count one request in the moving window; 0 when allowed, else seconds to wait."""
        return await self._window.hit(key, limit, window)

    async def add(self, key: str, amount: int, window: int) -> tuple[int, int]:
        """Add to the current window's counter; return (total, seconds until the window ends)."""
        index, reset = _window(self.clock(), window)
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= index - 1}
        total = self._counts.get((key, index), 0) + amount
        self._counts[(key, index)] = total
        return total, reset

    async def acquire(self, key: str, limit: int) -> bool:
        """Take one of `limit` slots; False when none is free."""
        if self._slots.get(key, 0) >= limit:
            return False
        self._slots[key] = self._slots.get(key, 0) + 1
        return True

    async def release(self, key: str) -> None:
        """Give back a slot taken by `acquire`."""
        self._slots[key] = max(0, self._slots.get(key, 0) - 1)


class RedisLimiter:
    """Counters in Redis, shared by every instance; fails open (logged) when Redis is down."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        """Connect lazily to the Redis at `url` (one connection pool for every counter)."""
        self.clock = clock
        self._redis: Any = connect(url)
        # Function-local: `limits` loads on first use, keeping cold start fast.
        from shared.security.moving_window import redis_window

        self._window: MovingWindow = redis_window(url, self._redis.connection_pool, clock)

    async def hit(self, key: str, limit: int, window: int) -> int:
        """Count one request in the moving window; 0 when allowed, else seconds to wait."""
        return await self._window.hit(key, limit, window)

    async def add(self, key: str, amount: int, window: int) -> tuple[int, int]:
        """Add to the current window's counter; return (total, seconds until the window ends)."""
        from redis.exceptions import RedisError

        index, reset = _window(self.clock(), window)
        name = f"{KEY_PREFIX}{key}:{index}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                pipe.expire(name, window + 5)
                total, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate limit store unavailable (%s); failing open", type(exc).__name__)
            return 0, reset
        return int(total), reset

    async def acquire(self, key: str, limit: int) -> bool:
        """Take one of `limit` slots; False when none is free."""
        from redis.exceptions import RedisError

        name = f"{KEY_PREFIX}slots:{key}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, SLOT_TTL_SECONDS)
                taken, _ = await pipe.execute()
            if int(taken) > limit:
                await self._redis.decr(name)
                return False
        except (RedisError, OSError) as exc:
            log.warning("rate limit store unavailable (%s); failing open", type(exc).__name__)
        return True

    async def release(self, key: str) -> None:
        """Give back a slot taken by `acquire`."""
        from redis.exceptions import RedisError

        try:
            await self._redis.decr(f"{KEY_PREFIX}slots:{key}")
        except (RedisError, OSError) as exc:
            log.warning("rate limit store unavailable (%s); slot expires", type(exc).__name__)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


class UpstashLimiter:
    """Counters in Upstash over its REST API, shared by every instance; fails open (logged)."""

    def __init__(
        self, url: str, token: str, clock: Callable[[], float] = time.time, *, retries: int = 0
    ) -> None:
        """Call Upstash at `url` with `token`; no REST retries by default (fail open fast)."""
        from upstash_redis.asyncio import Redis as UpstashRedis

        # Function-local: `limits` loads on first use, keeping cold start fast.
        from shared.platform.upstash_limits import transport_errors
        from shared.security.moving_window import upstash_window

        self._errors = transport_errors()
        self.clock = clock
        self._client: UpstashRedis = UpstashRedis(
            url.rstrip("/"), token, rest_retries=retries, allow_telemetry=False
        )
        self._window: MovingWindow = upstash_window(self._client, clock)

    async def hit(self, key: str, limit: int, window: int) -> int:
        """Count one request in the moving window; 0 when allowed, else seconds to wait."""
        return await self._window.hit(key, limit, window)

    async def add(self, key: str, amount: int, window: int) -> tuple[int, int]:
        """Add to the current fixed window's counter; return (total, seconds until it ends)."""
        index, reset = _window(self.clock(), window)
        name = f"{KEY_PREFIX}{key}:{index}"
        try:
            tx = self._client.multi()
            tx.incrby(name, amount)
            tx.expire(name, window + 5)
            replies: list[Any] = await tx.exec()
        except self._errors as exc:
            log.warning("rate limit store unavailable (%s); failing open", type(exc).__name__)
            return 0, reset
        return int(replies[0]), reset

    async def acquire(self, key: str, limit: int) -> bool:
        """Take one of `limit` slots; False when none is free."""
        name = f"{KEY_PREFIX}slots:{key}"
        try:
            tx = self._client.multi()
            tx.incr(name)
            tx.expire(name, SLOT_TTL_SECONDS)
            replies: list[Any] = await tx.exec()
            if int(replies[0]) > limit:
                await self._client.decr(name)
                return False
        except self._errors as exc:
            log.warning("rate limit store unavailable (%s); failing open", type(exc).__name__)
        return True

    async def release(self, key: str) -> None:
        """Give back a slot taken by `acquire`."""
        try:
            await self._client.decr(f"{KEY_PREFIX}slots:{key}")
        except self._errors as exc:
            log.warning("rate limit store unavailable (%s); slot expires", type(exc).__name__)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._client.close()


@service("limiter")
def get_limiter() -> Limiter:
    """The process-wide limiter: Redis, else Upstash, else in-process (the first configured)."""
    settings = get_settings()
    if settings.redis_url:
        return RedisLimiter(settings.redis_url)
    url, token = settings.upstash_redis_rest_url, settings.upstash_redis_rest_token
    if url and token:
        return UpstashLimiter(url, token.get_secret_value())
    return MemoryLimiter()


async def enforce_request_rate(principal: Principal, limiter: Limiter | None = None) -> None:
    """Count one request for the tenant and for the key/user; raise RateLimited when over."""
    tenant, key_id = principal.tenant_id, principal.key_id
    budgets = await effective_limits(tenant)
    limiter = limiter or get_limiter()
    checks = (
        (f"req:t:{tenant}", budgets.requests_per_minute, "tenant"),
        (f"req:k:{tenant}:{key_id}", budgets.key_requests_per_minute, "key"),
    )
    for key, limit, scope in checks:
        if limit <= 0:
            continue
        wait = await limiter.hit(key, limit, MINUTE)
        if wait:
            raise RateLimited(
                f"The {scope} may make at most {limit} requests per minute.", retry_after=wait
            )


@asynccontextmanager
async def run_slot(principal: Principal, limiter: Limiter | None = None) -> AsyncIterator[None]:
    """Hold one of the tenant's concurrent-run slots (its budget) for the duration of a run."""
    limit = (await effective_limits(principal.tenant_id)).concurrent_runs
    limiter = limiter or get_limiter()
    key = f"runs:{principal.tenant_id}"
    if limit <= 0:
        yield
        return
    if not await limiter.acquire(key, limit):
        raise RateLimited(f"The tenant may have at most {limit} runs at once.", retry_after=1)
    try:
        yield
    finally:
        await limiter.release(key)


async def check_token_budget(tenant_id: str, limiter: Limiter | None = None) -> None:
    """Refuse a new run when the tenant has spent its tokens-per-day budget this UTC day."""
    limit = (await effective_limits(tenant_id)).tokens_per_day
    if limit <= 0:
        return
    total, reset = await (limiter or get_limiter()).add(f"tok:{tenant_id}", 0, DAY)
    if total >= limit:
        raise RateLimited(f"The tenant has used its {limit} tokens for today.", retry_after=reset)


async def record_tokens(tenant_id: str, tokens: int, limiter: Limiter | None = None) -> None:
    """Add a run's tokens (finished or failed) to the tenant's daily budget."""
    if tokens > 0 and (await effective_limits(tenant_id)).tokens_per_day > 0:
        await (limiter or get_limiter()).add(f"tok:{tenant_id}", tokens, DAY)
