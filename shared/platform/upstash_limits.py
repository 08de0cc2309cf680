"""A `limits` storage over the Upstash Redis REST API, for the moving-window rate limiter.

`limits` ships async storages for Redis (redis-py, coredis, valkey), memory, memcached and
MongoDB, none over HTTP; the cloud stage reaches Redis through Upstash's REST API
(`upstash-redis`), so this adapter runs the same Lua scripts `limits`' own Redis storage runs
(`RedisBridge.SCRIPT_*`) through `EVAL` on the REST client. Entries therefore have the layout and
semantics of `limits`' Redis storage: one list per key of entry timestamps, newest first,
trimmed to the limit.

Only what the moving window needs is implemented with care (`acquire_entry`,
`get_moving_window`); the counter methods the `Storage` base requires are there too (the same
scripts). Upstash and transport failures surface as `limits.errors.StorageError`
(`wrap_exceptions=True`), which the caller turns into its fail-open policy.

The clock is injectable: entry timestamps are taken on the client, as `limits` does, so
instances whose clocks disagree by a few milliseconds share one window with that much slack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.storage.redis.bridge import RedisBridge

if TYPE_CHECKING:
    from upstash_redis.asyncio import Redis as UpstashRedis

_ACQUIRE: Final = RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW.decode()
_WINDOW: Final = RedisBridge.SCRIPT_MOVING_WINDOW.decode()
_INCR_EXPIRE: Final = RedisBridge.SCRIPT_INCR_EXPIRE.decode()


def transport_errors() -> tuple[type[Exception], ...]:
    """What an Upstash call raises when the service or the network fails."""
    import httpx
    from upstash_redis.errors import UpstashError

    return (UpstashError, httpx.HTTPError, OSError, TimeoutError)


class UpstashStorage(Storage, MovingWindowSupport):
    """`limits` async storage for the moving window, over an `upstash_redis.asyncio.Redis`."""

    STORAGE_SCHEME = ["ascent+upstash"]

    def __init__(
        self,
        client: UpstashRedis,
        *,
        key_prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use `client` (the caller closes it); keys are `<key_prefix>:<limits key>`."""
        super().__init__(None, wrap_exceptions=True)
        self._client = client
        self._prefix = key_prefix
        self._clock = clock

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """The errors `limits` wraps in StorageError."""
        return transport_errors()

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Add `amount` entries to the window at `key` unless that would exceed `limit`."""
        now = self._clock()
        args = [repr(now), str(limit), str(expiry), str(amount)]
        return bool(await self._client.eval(_ACQUIRE, [self._key(key)], args))

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest entry still in the window, entries in the window)."""
        now = self._clock()
        found: Any = await self._client.eval(
            _WINDOW, [self._key(key)], [repr(now - expiry), str(limit)]
        )
        if found:
            return float(found[0]), int(found[1])
        return now, 0

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add to a fixed-window counter that expires `expiry` seconds after its first hit."""
        found = await self._client.eval(_INCR_EXPIRE, [self._key(key)], [str(expiry), str(amount)])
        return int(found)

    async def get(self, key: str) -> int:
        """A fixed-window counter's value (0 when absent)."""
        return int(await self._client.get(self._key(key)) or 0)

    async def get_expiry(self, key: str) -> float:
        """When the key expires (now when it has no TTL)."""
        return max(int(await self._client.ttl(self._key(key))), 0) + self._clock()

    async def check(self) -> bool:
        """Whether Upstash answers."""
        try:
            return bool(await self._client.ping())
        except transport_errors():
            return False

    async def reset(self) -> int | None:
        """Not supported: clearing every key of a shared store is left to its operator."""
        return None

    async def clear(self, key: str) -> None:
        """Forget the window or counter at `key`."""
        await self._client.delete(self._key(key))
