"""Per-tenant budgets in process: overrides over the defaults, and how changes reach instances.

Budgets are enforced with in-memory limiters at a fixed fake time, so windows never roll over
mid-test. Tenants are new and unique per test, so the same tests run on the test's own SQLite
file and on the shared test Postgres (when DATABASE_URL is set). Tests that need Redis use the
real one (127.0.0.1:6379 unless REDIS_URL says otherwise); "another instance" is a second
`LimitsResolver` with its own process cache and a fake clock, sharing that Redis and database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from local.devhost_process import free_port
from shared.core.errors import RateLimited, ServiceUnavailable
from shared.core.settings import get_settings
from shared.db import repo
from shared.db.engine import _sessionmaker, db_session, get_engine
from shared.db.migrate import migrate
from shared.platform import cache as cache_mod
from shared.security import tenant_limits
from shared.security.auth import Principal
from shared.security.ratelimit import (
    MemoryLimiter,
    check_token_budget,
    enforce_request_rate,
    record_tokens,
    run_slot,
)
from shared.security.tenant_limits import (
    LOCAL_TTL_SECONDS,
    Budgets,
    LimitOverrides,
    LimitsResolver,
    Overrides,
    effective_limits,
    get_tenant_limits,
    limits_cache_key,
    set_tenant_limits,
)
from tests.conftest import POSTGRES_URL
from tests.limits_clock import Clock, follow_fake_clock

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
NOW = 1_000_040.0  # a fake time: every request of a burst lands at this instant
DEFAULTS = Budgets(
    requests_per_minute=3, key_requests_per_minute=0, concurrent_runs=2, tokens_per_day=100
)
DB_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def fake_limits_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """`limits`' storages count in the test's fake time."""
    follow_fake_clock(monkeypatch)


def _reset_caches() -> None:
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployment budgets: 3 requests/min per tenant, none per key, 2 runs, 100 tokens/day."""
    monkeypatch.setenv("ASCENT_RATE_LIMIT_PER_MINUTE", str(DEFAULTS.requests_per_minute))
    monkeypatch.setenv("ASCENT_KEY_RATE_LIMIT_PER_MINUTE", str(DEFAULTS.key_requests_per_minute))
    monkeypatch.setenv("ASCENT_MAX_CONCURRENT_RUNS", str(DEFAULTS.concurrent_runs))
    monkeypatch.setenv("ASCENT_TOKENS_PER_DAY", str(DEFAULTS.tokens_per_day))
    get_settings.cache_clear()


@pytest.fixture(params=DB_BACKENDS)
async def database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """A migrated database: this test's SQLite file, or the shared Postgres (new tenants only)."""
    if request.param == "postgres":
        assert POSTGRES_URL is not None
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    _reset_caches()
    await migrate(get_engine())
    yield
    await cache_mod.close_cache()
    await get_engine().dispose()
    _reset_caches()


@pytest.fixture(scope="module")
def real_redis() -> Iterator[redis.Redis]:
    """The real Redis, or a skip saying how to get one."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {REDIS_URL} (start redis-server)")
    yield client
    client.close()


@pytest.fixture
def shared_redis(
    monkeypatch: pytest.MonkeyPatch, database: None, real_redis: redis.Redis
) -> redis.Redis:
    """REDIS_URL set for this test, so the limits cache (and its invalidation) uses Redis."""
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    get_settings.cache_clear()
    return real_redis


async def _tenant() -> str:
    """A new tenant with a unique id."""
    tenant_id = f"lim-{uuid.uuid4().hex[:12]}"
    async with db_session() as db:
        await repo.create_tenant(session=db, name=tenant_id, tenant_id=tenant_id)
        await db.commit()
    return tenant_id


async def _set(tenant_id: str, **values: int | None) -> None:
    """PUT the tenant's limits as the admin API does (unmentioned budgets: null)."""
    body = LimitOverrides.model_validate(
        {name: values.get(name) for name in LimitOverrides.model_fields}
    )
    async with db_session() as db:
        await set_tenant_limits(session=db, tenant_id=tenant_id, body=body)


async def _burst(tenant_id: str, limiter: MemoryLimiter, n: int, key: str = "k") -> list[int]:
    """Send n requests; return the Retry-After of each refused one (0 when allowed)."""
    principal = Principal(tenant_id=tenant_id, key_id=key)
    results = []
    for _ in range(n):
        try:
            await enforce_request_rate(principal, limiter)
            results.append(0)
        except RateLimited as exc:
            results.append(exc.retry_after)
    return results


# --- effective budgets -----------------------------------------------------------------------


async def test_tenant_without_overrides_gets_the_deployment_defaults(database: None) -> None:
    """A tenant nobody configured is held to the ASCENT_* settings."""
    assert await effective_limits(await _tenant()) == DEFAULTS


async def test_an_override_replaces_only_its_own_budget(database: None) -> None:
    """Overriding requests per minute leaves the other three budgets at their defaults."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=50)
    assert await effective_limits(tenant) == Budgets(
        requests_per_minute=50, key_requests_per_minute=0, concurrent_runs=2, tokens_per_day=100
    )


async def test_admin_view_shows_overrides_and_effective_budgets(database: None) -> None:
    """GET limits shows null for a default and the value enforced next to each override."""
    tenant = await _tenant()
    await _set(tenant, tokens_per_day=0)
    async with db_session() as db:
        shown = await get_tenant_limits(session=db, tenant_id=tenant)
    assert shown.model_dump() == {
        "tenant_id": tenant,
        "overrides": {
            "requests_per_minute": None,
            "key_requests_per_minute": None,
            "concurrent_runs": None,
            "tokens_per_day": 0,
        },
        "effective": {
            "requests_per_minute": 3,
            "key_requests_per_minute": 0,
            "concurrent_runs": 2,
            "tokens_per_day": 0,
        },
    }


# --- requests per minute ---------------------------------------------------------------------


async def test_lower_override_refuses_the_tenant_after_its_own_budget(database: None) -> None:
    """With 1 request per minute, the tenant's second request is refused for a minute."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=1)
    assert await _burst(tenant, MemoryLimiter(Clock(NOW)), 3) == [0, 61, 61]


async def test_tenant_on_the_default_is_unaffected_by_anothers_override(database: None) -> None:
    """Another tenant's lower override does not lower the budget of a tenant on the default."""
    limited, other = await _tenant(), await _tenant()
    await _set(limited, requests_per_minute=1)
    limiter = MemoryLimiter(Clock(NOW))
    await _burst(limited, limiter, 3)
    assert await _burst(other, limiter, 3) == [0, 0, 0]


async def test_higher_override_raises_the_tenants_budget(database: None) -> None:
    """With 5 requests per minute, the tenant gets 5 where the default allows 3."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=5)
    assert await _burst(tenant, MemoryLimiter(Clock(NOW)), 6) == [0, 0, 0, 0, 0, 61]


async def test_zero_override_turns_the_request_budget_off(database: None) -> None:
    """requests_per_minute=0 lets the tenant make any number of requests."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=0)
    assert set(await _burst(tenant, MemoryLimiter(Clock(NOW)), 20)) == {0}


async def test_null_restores_the_default(database: None) -> None:
    """Resetting an override to null brings back the deployment's 3 requests per minute."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=0)
    await _set(tenant, requests_per_minute=None)
    assert await _burst(tenant, MemoryLimiter(Clock(NOW)), 4) == [0, 0, 0, 61]


async def test_key_override_turns_on_a_budget_per_key(database: None) -> None:
    """key_requests_per_minute=1 (default off) limits each key, not the tenant as a whole."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=0, key_requests_per_minute=1)
    limiter = MemoryLimiter(Clock(NOW))
    first = await _burst(tenant, limiter, 2, key="one")
    second = await _burst(tenant, limiter, 2, key="two")
    assert (first, second) == ([0, 61], [0, 61])


# --- concurrent runs and tokens per day ------------------------------------------------------


async def test_concurrent_runs_override_bounds_the_tenants_slots(database: None) -> None:
    """With concurrent_runs=1, a second run while the first holds its slot is refused."""
    tenant = await _tenant()
    await _set(tenant, concurrent_runs=1)
    principal, limiter = Principal(tenant_id=tenant, key_id="k"), MemoryLimiter()
    async with run_slot(principal, limiter):
        with pytest.raises(RateLimited):
            async with run_slot(principal, limiter):
                pass


async def test_concurrent_runs_zero_override_removes_the_bound(database: None) -> None:
    """With concurrent_runs=0 the tenant may hold more runs than the default 2."""
    tenant = await _tenant()
    await _set(tenant, concurrent_runs=0)
    principal, limiter = Principal(tenant_id=tenant, key_id="k"), MemoryLimiter()
    async with (
        run_slot(principal, limiter),
        run_slot(principal, limiter),
        run_slot(principal, limiter),
    ):
        pass


async def test_tokens_per_day_override_refuses_after_the_tenants_budget(database: None) -> None:
    """With tokens_per_day=10, a run after 10 tokens is refused while 100 is the default."""
    limited, other = await _tenant(), await _tenant()
    await _set(limited, tokens_per_day=10)
    limiter = MemoryLimiter(Clock(NOW))
    for tenant in (limited, other):
        await record_tokens(tenant, 10, limiter)
    await check_token_budget(other, limiter)
    with pytest.raises(RateLimited):
        await check_token_budget(limited, limiter)


async def test_tokens_per_day_zero_override_turns_the_budget_off(database: None) -> None:
    """With tokens_per_day=0, runs go on past the default's 100 tokens."""
    tenant = await _tenant()
    await _set(tenant, tokens_per_day=0)
    limiter = MemoryLimiter(Clock(NOW))
    await record_tokens(tenant, 1000, limiter)
    await check_token_budget(tenant, limiter)


# --- caching and invalidation ----------------------------------------------------------------


async def test_a_change_applies_at_once_on_the_instance_that_made_it(database: None) -> None:
    """A budget this process has cached is replaced by the PUT it serves, not after a TTL."""
    tenant = await _tenant()
    limiter = MemoryLimiter(Clock(NOW))
    assert await _burst(tenant, limiter, 1) == [0]  # the default is now cached here
    await _set(tenant, requests_per_minute=1)
    assert await _burst(tenant, limiter, 1) == [61]


@pytest.fixture
def db_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every database read of the limits resolver."""
    opened: list[str] = []
    real = tenant_limits._limits_row

    def counting(tx: Any, tenant_id: str) -> Any:
        opened.append("read")
        return real(tx, tenant_id)

    monkeypatch.setattr(tenant_limits, "_limits_row", counting)
    return opened


async def test_repeated_checks_within_the_ttl_do_no_io(
    shared_redis: redis.Redis, db_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first lookup, checks within LOCAL_TTL_SECONDS read neither Redis nor the DB."""
    tenant = await _tenant()
    resolver = LimitsResolver(clock=Clock(0.0))
    await resolver.effective(tenant)
    redis_reads: list[str] = []
    cache = cache_mod.get_cache()
    assert cache is not None
    real_get = cache.get

    async def counting_get(key: str) -> str | None:
        redis_reads.append(key)
        return await real_get(key)

    monkeypatch.setattr(cache, "get", counting_get)
    for _ in range(50):
        await resolver.effective(tenant)
    assert (len(db_reads), redis_reads) == (1, [])


async def test_a_burst_of_checks_on_a_cold_cache_reads_the_database_once(
    database: None, db_reads: list[str]
) -> None:
    """Concurrent checks of a tenant the process has not cached share one database read."""
    tenant = await _tenant()
    resolver = LimitsResolver(clock=Clock(0.0))
    budgets = await asyncio.gather(*(resolver.effective(tenant) for _ in range(50)))
    assert (len(db_reads), len(set(budgets))) == (1, 1)


async def test_another_instance_applies_a_change_within_the_local_ttl(
    shared_redis: redis.Redis,
) -> None:
    """An instance that cached the old budget enforces the new one once its entry is
    LOCAL_TTL_SECONDS old, the documented bound."""
    tenant = await _tenant()
    clock = Clock(0.0)
    other = LimitsResolver(clock=clock)
    before = (await other.effective(tenant)).requests_per_minute
    await _set(tenant, requests_per_minute=1)
    clock.now += LOCAL_TTL_SECONDS
    assert (before, (await other.effective(tenant)).requests_per_minute) == (3, 1)


async def test_another_instance_refreshes_from_redis_not_the_database(
    shared_redis: redis.Redis, db_reads: list[str]
) -> None:
    """The PUT writes the new budgets to Redis, so other instances refresh without a query."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=7)
    reads_before = len(db_reads)
    other = LimitsResolver(clock=Clock(0.0))
    assert (await other.effective(tenant)).requests_per_minute == 7
    assert len(db_reads) == reads_before


async def test_a_stale_fill_cannot_overwrite_a_change(shared_redis: redis.Redis) -> None:
    """A fill that read the row before the PUT's commit (SET NX) loses to the PUT's write."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=1)
    cache = cache_mod.get_cache()
    assert cache is not None
    await cache.set(limits_cache_key(tenant), Overrides().dumps(), 60, only_if_absent=True)
    fresh = LimitsResolver(clock=Clock(0.0))
    assert (await fresh.effective(tenant)).requests_per_minute == 1


async def test_a_corrupt_cache_entry_is_ignored(shared_redis: redis.Redis) -> None:
    """An unparsable Redis entry is not trusted: the budgets come from the database."""
    tenant = await _tenant()
    await _set(tenant, requests_per_minute=4)
    shared_redis.set(limits_cache_key(tenant), b'{"requests_per_minute": -1}', ex=60)
    fresh = LimitsResolver(clock=Clock(0.0))
    assert (await fresh.effective(tenant)).requests_per_minute == 4


async def test_unanswered_invalidation_is_503_and_keeps_the_change(
    database: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis not answering, the PUT is saved but answers 503 so the caller retries."""
    tenant = await _tenant()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    with pytest.raises(ServiceUnavailable):
        await _set(tenant, requests_per_minute=9)
    async with db_session() as db:
        shown = await get_tenant_limits(session=db, tenant_id=tenant)
    assert shown.overrides.requests_per_minute == 9


async def test_unmigrated_database_falls_back_to_the_defaults() -> None:
    """Before migration 0010 (no tenant_limits table) every tenant gets the deployment defaults."""
    resolver = LimitsResolver(clock=Clock(0.0))
    try:
        assert await resolver.effective(f"lim-{uuid.uuid4().hex[:12]}") == DEFAULTS
    finally:
        await get_engine().dispose()
