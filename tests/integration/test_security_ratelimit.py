"""Rate limits and quotas: moving request windows, fixed token days, in memory and in Redis."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from local.devhost_process import free_port
from shared.core.errors import RateLimited
from shared.db.engine import get_engine
from shared.db.migrate import migrate
from shared.security.auth import Principal
from shared.security.ratelimit import (
    MemoryLimiter,
    RedisLimiter,
    check_token_budget,
    enforce_request_rate,
    record_tokens,
    run_slot,
)
from tests.conftest import DevHost, start_devhost
from tests.limits_clock import Clock, follow_fake_clock

ALICE = Principal(tenant_id="tenant-a", key_id="key-1")
ALICE_OTHER_KEY = Principal(tenant_id="tenant-a", key_id="key-2")
BOB = Principal(tenant_id="tenant-b", key_id="key-3")


@pytest.fixture(autouse=True)
def fake_limits_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """`limits`' storages count in the test's fake time."""
    follow_fake_clock(monkeypatch)


@pytest.fixture(autouse=True)
async def no_overrides() -> AsyncIterator[None]:
    """This test's own empty, migrated database: its tenants have no per-tenant budget
    overrides (shared/security/tenant_limits.py), so the settings alone decide the budgets."""
    await migrate(get_engine())
    yield
    await get_engine().dispose()


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small budgets: 3 requests/min per tenant, 2 per key, 1 concurrent run, 100 tokens/day."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_RATE_LIMIT_PER_MINUTE", "3")
    monkeypatch.setenv("ASCENT_KEY_RATE_LIMIT_PER_MINUTE", "2")
    monkeypatch.setenv("ASCENT_MAX_CONCURRENT_RUNS", "1")
    monkeypatch.setenv("ASCENT_TOKENS_PER_DAY", "100")
    get_settings.cache_clear()


async def _burst(principal: Principal, limiter: MemoryLimiter | RedisLimiter, n: int) -> list[int]:
    """Send n requests; return the Retry-After of each refused one (0 when allowed)."""
    results = []
    for _ in range(n):
        try:
            await enforce_request_rate(principal, limiter)
            results.append(0)
        except RateLimited as exc:
            results.append(exc.retry_after)
    return results


async def test_burst_over_key_limit_is_refused_with_retry_after(limits: None) -> None:
    """A key's third request in a minute is refused until the first has left the window."""
    limiter = MemoryLimiter(Clock(1_000_040.0))
    assert await _burst(ALICE, limiter, 3) == [0, 0, 61]


async def test_tenant_limit_spans_its_keys(limits: None) -> None:
    """Two keys of one tenant share the tenant's 3 requests per minute."""
    limiter = MemoryLimiter(Clock(1_000_040.0))
    first = await _burst(ALICE, limiter, 2)
    second = await _burst(ALICE_OTHER_KEY, limiter, 2)
    assert (first, second) == ([0, 0], [0, 61])


async def test_other_tenants_are_unaffected(limits: None) -> None:
    """One tenant exhausting its budget leaves another tenant's untouched."""
    limiter = MemoryLimiter(Clock(1_000_040.0))
    await _burst(ALICE, limiter, 5)
    assert await _burst(BOB, limiter, 2) == [0, 0]


async def test_budget_recovers_in_the_next_window(limits: None) -> None:
    """After Retry-After seconds the key may send requests again."""
    clock = Clock(1_000_040.0)
    limiter = MemoryLimiter(clock)
    refused = (await _burst(ALICE, limiter, 3))[-1]
    clock.now += refused
    assert await _burst(ALICE, limiter, 1) == [0]


async def test_zero_disables_the_request_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCENT_RATE_LIMIT_PER_MINUTE=0 and ASCENT_KEY_RATE_LIMIT_PER_MINUTE=0 mean no limit."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("ASCENT_KEY_RATE_LIMIT_PER_MINUTE", "0")
    get_settings.cache_clear()
    assert set(await _burst(ALICE, MemoryLimiter(Clock(0.0)), 50)) == {0}


async def test_concurrent_run_slots_are_bounded(limits: None) -> None:
    """With one slot, a second run while the first holds it is refused."""
    limiter = MemoryLimiter()
    async with run_slot(ALICE, limiter):
        with pytest.raises(RateLimited):
            async with run_slot(ALICE, limiter):
                pass


async def test_run_slot_is_released_after_the_run(limits: None) -> None:
    """A finished run (even a failed one) gives its slot back."""
    limiter = MemoryLimiter()
    with pytest.raises(ValueError):
        async with run_slot(ALICE, limiter):
            raise ValueError("run failed")
    async with run_slot(ALICE, limiter):
        pass


async def test_token_budget_refuses_until_the_next_utc_day(limits: None) -> None:
    """After 100 tokens in a UTC day, new runs are refused until midnight UTC."""
    clock = Clock(86_400 * 20_000 + 86_400 - 3600)  # 23:00 UTC
    limiter = MemoryLimiter(clock)
    await check_token_budget(ALICE.tenant_id, limiter)
    await record_tokens(ALICE.tenant_id, 100, limiter)
    with pytest.raises(RateLimited) as refused:
        await check_token_budget(ALICE.tenant_id, limiter)
    assert refused.value.retry_after == 3600


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on loopback (skipped when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture
async def two_instances(redis_url: str) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    """Two Redis limiters (as two app instances would hold) at one fake time."""
    clock = Clock(2_000_000_000.0 + (time.time_ns() % 10_000) * 120)
    first, second = RedisLimiter(redis_url, clock), RedisLimiter(redis_url, clock)
    yield first, second
    await first.close()
    await second.close()


async def test_redis_counts_are_shared_by_instances(
    limits: None, two_instances: tuple[RedisLimiter, RedisLimiter]
) -> None:
    """Requests through two instances count against one budget in Redis."""
    first, second = two_instances
    principal = Principal(tenant_id=f"t-{time.time_ns()}", key_id="k")
    assert await _burst(principal, first, 1) + await _burst(principal, second, 2) == [0, 0, 61]


async def test_redis_run_slots_are_shared_by_instances(
    limits: None, two_instances: tuple[RedisLimiter, RedisLimiter]
) -> None:
    """A run slot held through one instance is not available through the other."""
    first, second = two_instances
    principal = Principal(tenant_id=f"t-{time.time_ns()}", key_id="k")
    async with run_slot(principal, first):
        with pytest.raises(RateLimited):
            async with run_slot(principal, second):
                pass


async def test_redis_outage_fails_open(limits: None) -> None:
    """With Redis unreachable, requests are allowed (the documented fail-open decision)."""
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", Clock(0.0))
    try:
        assert await _burst(ALICE, limiter, 5) == [0] * 5
    finally:
        await limiter.close()


@pytest.fixture(scope="module")
def limited_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """A dev host whose tenants may make 3 requests per minute."""
    host = start_devhost(
        tmp_path_factory.mktemp("ratelimit"), extra_env={"ASCENT_RATE_LIMIT_PER_MINUTE": "3"}
    )
    yield host
    host.stop()


def test_http_burst_gets_429_with_retry_after(limited_host: DevHost) -> None:
    """A burst over a 3/minute budget on a dev host gets problem+json 429s with Retry-After."""
    with limited_host.client() as client:
        responses = [client.get("/agents") for _ in range(8)]
    refused = [r for r in responses if r.status_code == 429]
    assert refused and {r.status_code for r in responses} <= {200, 429}
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    assert refused[0].headers["content-type"].startswith("application/problem+json")
    assert refused[0].json()["type"] == "urn:ascent:problem:rate-limited"


def test_health_is_not_rate_limited(limited_host: DevHost) -> None:
    """The unauthenticated health probe is outside tenant budgets."""
    url = f"{limited_host.base_url}/health"
    assert {httpx.get(url, timeout=30).status_code for _ in range(5)} == {200}
