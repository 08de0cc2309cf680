"""A small shared cache in Redis, used where it pays: API-key lookups (shared/security/auth.py) and
tenants' budget overrides (shared/security/tenant_limits.py).

Only when REDIS_URL is set. Without Redis there is **no cache of API keys at all**, deliberately:
an in-process cache could not be invalidated on the other instances, and a revoked or rotated key
must stop working at once everywhere. (Budget overrides tolerate a documented few seconds of
staleness, so shared/security/tenant_limits.py keeps them in process too, in front of this cache.)
Rate-limit counters (shared/security/ratelimit.py) already live in Redis and build their client
with the same factory, `connect`.

The agent catalog is not cached here: it is static code (shared/agents/__init__.py), built once
per process, and nothing about it changes at run time, so there is nothing to invalidate.

Failure policy: reads and fills **fall back** to the source of truth (the database) when Redis
fails - a warning is logged once per outage, never per request, and for a few seconds after a
failure the cache is bypassed so a dead Redis does not add a timeout to every request.
Invalidations (`delete`) always try Redis and raise CacheUnavailable on failure, so the caller
can decide (a revocation must not report success silently while a stale entry may survive).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.core.services import SERVICES, service
from shared.core.settings import get_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Every cache key starts with this, so the cache shares a Redis with counters and sessions.
NAMESPACE = "ascent:"
# After a Redis failure, reads and fills skip Redis for this long (deletes always try).
BYPASS_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = 2.0


class CacheUnavailable(Exception):
    """Redis did not answer an invalidation; a stale entry may live until its TTL."""


def connect(url: str) -> Redis:
    """Build a `redis.asyncio` client for `url`; it connects lazily, on its first command.

    The one client factory for Ascent's Redis uses (cache and rate limits), with bounded socket
    timeouts so an unreachable Redis fails fast instead of hanging a request.
    """
    import redis.asyncio as aioredis

    client: Redis = aioredis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
    )
    return client


class RedisCache:
    """String values with a TTL in Redis; reads fail soft, invalidations fail loudly."""

    def __init__(self, client: Redis, clock: Callable[[], float] = time.monotonic) -> None:
        """Use `client` (owned by this cache: `aclose` closes it)."""
        self._redis = client
        self._clock = clock
        self._bypass_until = 0.0
        self._degraded = False

    def _failed(self, exc: BaseException, action: str) -> None:
        """Note an outage: warn on its first failure only, and bypass Redis for a while."""
        self._bypass_until = self._clock() + BYPASS_SECONDS
        if not self._degraded:
            self._degraded = True
            log.warning(
                "cache unavailable (%s during %s); falling back to the database",
                type(exc).__name__,
                action,
            )

    def _recovered(self) -> None:
        """Note a successful call: the next failure is a new outage and is logged again."""
        if self._degraded:
            self._degraded = False
            log.info("cache available again")

    def _bypassed(self) -> bool:
        return self._clock() < self._bypass_until

    async def get(self, key: str) -> str | None:
        """The value at `key`, or None when missing or when Redis fails."""
        from redis.exceptions import RedisError

        if self._bypassed():
            return None
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError) as exc:
            self._failed(exc, "get")
            return None
        self._recovered()
        if raw is None:
            return None
        return raw if isinstance(raw, str) else raw.decode()

    async def set(
        self, key: str, value: str, ttl_seconds: int, *, only_if_absent: bool = False
    ) -> None:
        """Store `value` at `key` for `ttl_seconds`; a Redis failure is logged, not raised.

        `only_if_absent` (SET NX) is for fills from the database: a fill that read the row just
        before a writer's commit cannot then overwrite the value that writer stored after it.
        """
        from redis.exceptions import RedisError

        if self._bypassed():
            return
        try:
            await self._redis.set(key, value, ex=ttl_seconds, nx=only_if_absent)
        except (RedisError, OSError) as exc:
            self._failed(exc, "set")
            return
        self._recovered()

    async def delete(self, key: str) -> None:
        """Remove `key` now, even during a bypass; raise CacheUnavailable when Redis fails."""
        from redis.exceptions import RedisError

        try:
            await self._redis.delete(key)
        except (RedisError, OSError) as exc:
            self._failed(exc, "delete")
            raise CacheUnavailable(type(exc).__name__) from None
        self._recovered()

    async def ping(self) -> None:
        """Raise unless the server answers (the health probe; no bypass applies)."""
        await self._redis.ping()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


# One cache per event loop: a redis.asyncio connection belongs to the loop that opened it. The
# Functions host and the dev host run one loop, so this is one client per process there.
@service("cache", per_loop=True)
def get_cache() -> RedisCache | None:
    """This process's cache (built lazily, once per event loop), or None without REDIS_URL."""
    url = get_settings().redis_url
    return RedisCache(connect(url)) if url else None


async def close_cache() -> None:
    """Close and forget the running loop's cache (tests and shutdown hooks)."""
    # Through the registry, not the getter: tests may replace `get_cache` on this module.
    held: RedisCache | None = SERVICES.pop_here("cache")
    if held is not None:
        await held.aclose()
