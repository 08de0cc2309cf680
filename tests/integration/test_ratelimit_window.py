"""The moving-window request limit in each counter store: memory, Redis, and Upstash REST.

A fake clock steps through a minute boundary; the property checked is the one the fixed window
broke: no 60 s span ever holds more allowed requests than the limit. Redis is the real one
(REDIS_URL, default 127.0.0.1:6379); Upstash is the REST front over that Redis
(tests/fakes/upstash_rest.py), through the `upstash-redis` client production uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from local.devhost_process import free_port
from shared.core.settings import get_settings
from shared.security.ratelimit import (
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    UpstashLimiter,
    get_limiter,
)
from tests.fakes.upstash_rest import UpstashRestFront, running_front
from tests.limits_clock import Clock, follow_fake_clock

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
TOKEN = "test-upstash-token"
LIMIT = 5
MINUTE = 60
# 5 s before a minute boundary: a fixed window would let LIMIT through on each side of it.
START = 1_000_000 * MINUTE - 5.0
STEP = 5.0
STEPS = 40  # 200 s: three windows' worth
TRIES_PER_STEP = 2  # more demand than the limit allows


@pytest.fixture(scope="module")
def front() -> Iterator[UpstashRestFront]:
    """One Upstash REST front over the real Redis for the module."""
    with running_front(TOKEN, REDIS_URL) as found:
        yield found


@pytest.fixture(params=["memory", "redis", "upstash"])
async def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Limiter, Clock]]:
    """A limiter of each kind at the fake time START (the `limits` storages follow it)."""
    follow_fake_clock(monkeypatch)
    clock = Clock(START)
    if request.param == "memory":
        yield MemoryLimiter(clock), clock
        return
    if request.param == "redis":
        redis_limiter = RedisLimiter(REDIS_URL, clock)
        yield redis_limiter, clock
        await redis_limiter.close()
        return
    front: UpstashRestFront = request.getfixturevalue("front")
    upstash = UpstashLimiter(front.url, front.token, clock)
    yield upstash, clock
    await upstash.close()


async def test_no_60_second_span_holds_more_than_the_limit(
    store: tuple[Limiter, Clock],
) -> None:
    """Stepping a fake clock across minute boundaries, any 60 s holds at most LIMIT requests."""
    limiter, clock = store
    key = f"window:{time.time_ns()}"
    allowed: list[float] = []
    waits: list[int] = []
    for step in range(STEPS):
        clock.now = START + step * STEP
        for _ in range(TRIES_PER_STEP):
            wait = await limiter.hit(key, LIMIT, MINUTE)
            if wait == 0:
                allowed.append(clock.now)
            else:
                waits.append(wait)
    busiest = max(sum(1 for t in allowed if start <= t < start + MINUTE) for start in allowed)
    assert busiest == LIMIT
    # Across the boundary 5 s after START the fixed window would have allowed LIMIT more.
    assert [t for t in allowed if t < START + MINUTE] == [
        START,
        START,
        START + 5,
        START + 5,
        START + 10,
    ]
    assert all(1 <= wait <= MINUTE + 1 for wait in waits)


async def test_retry_after_is_when_a_request_is_allowed_again(
    store: tuple[Limiter, Clock],
) -> None:
    """Waiting the Retry-After a refusal gives is enough for the next request, and no less is."""
    limiter, clock = store
    key = f"retry:{time.time_ns()}"
    for _ in range(LIMIT):
        assert await limiter.hit(key, LIMIT, MINUTE) == 0
    clock.now += 20
    wait = await limiter.hit(key, LIMIT, MINUTE)
    assert wait == 41
    clock.now += wait - 1
    assert await limiter.hit(key, LIMIT, MINUTE) > 0
    clock.now += 1
    assert await limiter.hit(key, LIMIT, MINUTE) == 0


async def test_upstash_counters_are_shared_by_instances(front: UpstashRestFront) -> None:
    """Two instances on one Upstash share request windows, run slots and the token day."""
    clock = Clock(START)
    first, second = UpstashLimiter(front.url, TOKEN, clock), UpstashLimiter(front.url, TOKEN, clock)
    key = f"shared:{time.time_ns()}"
    try:
        assert [await first.hit(key, 2, MINUTE), await second.hit(key, 2, MINUTE)] == [0, 0]
        assert await first.hit(key, 2, MINUTE) == MINUTE + 1
        assert await first.acquire(key, 1)
        assert not await second.acquire(key, 1)
        await first.release(key)
        assert await second.acquire(key, 1)
        await first.add(f"tok:{key}", 7, 86_400)
        assert (await second.add(f"tok:{key}", 0, 86_400))[0] == 7
    finally:
        await first.close()
        await second.close()


async def test_an_upstash_outage_fails_open() -> None:
    """With Upstash unreachable, requests and run slots are allowed (the documented policy)."""
    limiter = UpstashLimiter(f"http://127.0.0.1:{free_port()}", TOKEN, Clock(START))
    try:
        assert [await limiter.hit("down", 1, MINUTE) for _ in range(3)] == [0, 0, 0]
        assert await limiter.acquire("down", 1)
    finally:
        await limiter.close()


def test_upstash_is_the_store_when_only_upstash_is_configured(
    monkeypatch: pytest.MonkeyPatch, front: UpstashRestFront
) -> None:
    """Without REDIS_URL but with Upstash's URL and token, the counters live in Upstash."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    for name, value in front.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_limiter.cache_clear()
    try:
        assert isinstance(get_limiter(), UpstashLimiter)
    finally:
        get_limiter.cache_clear()
        get_settings.cache_clear()
