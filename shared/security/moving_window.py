"""`limits`' moving window over its memory and Redis storages and Ascent's Upstash storage.

Kept apart from shared/security/ratelimit.py, which imports it on a limiter's first use, so that
`limits` (and its storages) never load at import time of the app: cold start stays fast.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from shared.platform.cache import SOCKET_TIMEOUT_SECONDS
from shared.platform.upstash_limits import UpstashStorage

if TYPE_CHECKING:
    from upstash_redis.asyncio import Redis as UpstashRedis

log = logging.getLogger(__name__)

# The windows' keys: `ascent:rl:mw:LIMITER/<key>/<seconds>` (Redis and Upstash).
WINDOW_PREFIX = "ascent:rl:mw"


class _Item(RateLimitItemPerSecond):
    """`limit` per `window` seconds, keyed without the limit so a changed budget keeps counting."""

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        """`LIMITER/<identifiers>/<window>`: the entries stay when a tenant's budget changes."""
        return "/".join([self.namespace, *map(str, identifiers), str(self.multiples)])


class MovingWindow:
    """`limits`' moving window over one of its async storages; fails open on storage errors."""

    def __init__(self, storage: Storage, clock: Callable[[], float]) -> None:
        """Count in `storage`; `clock` must be the time the storage stamps entries with."""
        self._limiter = MovingWindowRateLimiter(storage)
        self._clock = clock

    async def hit(self, key: str, limit: int, window: int) -> int:
        """Count one request in the moving window; 0 when allowed, else seconds to wait."""
        item = _Item(limit, window)
        try:
            if await self._limiter.hit(item, key):
                return 0
            stats = await self._limiter.get_window_stats(item, key)
        except StorageError as exc:
            log.warning(
                "rate limit store unavailable (%s); failing open", type(exc.storage_error).__name__
            )
            return 0
        # The oldest entry still counts at exactly reset_time (limits compares with >=).
        return max(1, math.floor(stats.reset_time - self._clock()) + 1)


def memory_window(clock: Callable[[], float]) -> MovingWindow:
    """A moving window in process memory (`limits`' MemoryStorage)."""
    return MovingWindow(MemoryStorage(), clock)


def redis_window(url: str, pool: Any, clock: Callable[[], float]) -> MovingWindow:
    """A moving window in the Redis at `url` (`limits`' redis-py storage), on `pool`."""
    storage = RedisStorage(
        "async+" + url,
        implementation="redispy",
        key_prefix=WINDOW_PREFIX,
        wrap_exceptions=True,
        connection_pool=pool,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
    )
    return MovingWindow(storage, clock)


def upstash_window(client: UpstashRedis, clock: Callable[[], float]) -> MovingWindow:
    """A moving window in Upstash, over its REST client (shared/platform/upstash_limits.py)."""
    return MovingWindow(UpstashStorage(client, key_prefix=WINDOW_PREFIX, clock=clock), clock)
