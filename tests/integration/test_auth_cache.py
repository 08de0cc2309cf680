"""The Redis cache of API-key lookups: hits, invalidation on revoke/rotate, outages, key names.

In process, two "instances" are two RedisCache objects with their own connections to one real
Redis (127.0.0.1:6379 unless REDIS_URL says otherwise) over one database; the e2e tests run two
dev host processes sharing a database and that Redis. Every key prefix is fresh and random, the
tests delete only their own entries, and nothing flushes Redis.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from local.devhost_process import free_port
from shared.core.errors import ServiceUnavailable, Unauthorized
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.platform import cache as cache_mod
from shared.platform.cache import RedisCache, connect
from shared.security import auth as auth_module
from shared.security.auth import Principal, apikey_cache_key, authenticate
from shared.security.tenancy import (
    IssuedKey,
    TenantCreate,
    create_tenant,
    issue_key,
    revoke_key,
    rotate_key,
)
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _redis() -> redis.Redis:
    """A synchronous client to inspect the real Redis."""
    return redis.Redis.from_url(REDIS_URL, socket_timeout=2)


@pytest.fixture(scope="module")
def real_redis() -> Iterator[redis.Redis]:
    """The real Redis, or a skip saying how to get one."""
    client = _redis()
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {REDIS_URL} (start redis-server)")
    yield client
    client.close()


def _use_redis(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point the settings at `url` for this test."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()


@pytest.fixture
async def schema() -> AsyncIterator[None]:
    """The schema on this test's own SQLite file."""
    await migrate(get_engine())
    yield
    await get_engine().dispose()
    await cache_mod.close_cache()


@pytest.fixture
async def issued(schema: None, real_redis: redis.Redis) -> AsyncIterator[IssuedKey]:
    """A fresh tenant with one key (a unique prefix); its cache entry is removed afterwards."""
    async with db_session() as db:
        tenant = await create_tenant(session=db, body=TenantCreate(name="cache test"))
        key = await issue_key(session=db, tenant_id=tenant.id, name="test")
    yield key
    real_redis.delete(apikey_cache_key(key.prefix))


class Instances:
    """Two app instances' caches: `on(cache)` makes authentication and admin calls use it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Open two caches with separate connections to the real Redis."""
        self._monkeypatch = monkeypatch
        self.first = RedisCache(connect(REDIS_URL))
        self.second = RedisCache(connect(REDIS_URL))

    def on(self, cache: RedisCache) -> None:
        """Act as the instance holding `cache` from now on."""
        self._monkeypatch.setattr(cache_mod, "get_cache", lambda: cache)


@pytest.fixture
async def instances(
    monkeypatch: pytest.MonkeyPatch, real_redis: redis.Redis
) -> AsyncIterator[Instances]:
    """Two instances sharing the real Redis (and the test's database)."""
    _use_redis(monkeypatch, REDIS_URL)
    pair = Instances(monkeypatch)
    yield pair
    await pair.first.aclose()
    await pair.second.aclose()


@pytest.fixture
def db_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the prefix of every database key lookup."""
    calls: list[str] = []
    real = auth_module._read_key

    def counting(tx: Any, prefix: str) -> Any:
        calls.append(prefix)
        return real(tx, prefix)

    monkeypatch.setattr(auth_module, "_read_key", counting)
    return calls


async def _auth(key: str) -> Principal:
    """Authenticate `Bearer <key>` with a fresh session, as one request would."""
    async with db_session() as db:
        return await authenticate(session=db, authorization=f"Bearer {key}")


async def test_second_lookup_is_served_from_the_cache(
    instances: Instances, issued: IssuedKey, db_lookups: list[str]
) -> None:
    """Two requests with one key read the database once; the second is a cache hit."""
    instances.on(instances.first)
    first, second = await _auth(issued.key), await _auth(issued.key)
    assert first == second == Principal(tenant_id=issued.tenant_id, key_id=issued.id)
    assert db_lookups == [issued.prefix]


async def test_a_cached_prefix_still_checks_the_secret(
    instances: Instances, issued: IssuedKey
) -> None:
    """A cache hit for a prefix with a wrong secret is 401: the hash is compared every time."""
    instances.on(instances.first)
    await _auth(issued.key)
    forged = issued.key[: issued.key.rindex("_") + 1] + "x" * 43
    with pytest.raises(Unauthorized):
        await _auth(forged)


async def test_revoke_on_another_instance_applies_at_once(
    instances: Instances, issued: IssuedKey, real_redis: redis.Redis
) -> None:
    """A key cached by instance one and revoked through instance two is 401 on its next use."""
    instances.on(instances.first)
    await _auth(issued.key)
    assert real_redis.exists(apikey_cache_key(issued.prefix))  # it really was cached
    instances.on(instances.second)
    async with db_session() as db:
        await revoke_key(session=db, tenant_id=issued.tenant_id, key_id=issued.id)
    instances.on(instances.first)
    with pytest.raises(Unauthorized):
        await _auth(issued.key)


async def test_rotate_on_another_instance_stops_the_old_key_at_once(
    instances: Instances, issued: IssuedKey, real_redis: redis.Redis
) -> None:
    """A cached key rotated through instance two is 401 on instance one's next request."""
    instances.on(instances.first)
    await _auth(issued.key)
    assert real_redis.exists(apikey_cache_key(issued.prefix))
    instances.on(instances.second)
    async with db_session() as db:
        rotated = await rotate_key(session=db, tenant_id=issued.tenant_id, key_id=issued.id)
    real_redis.delete(apikey_cache_key(rotated.prefix))  # cleaned up even if a check fails
    instances.on(instances.first)
    with pytest.raises(Unauthorized):
        await _auth(issued.key)


async def test_rotated_replacement_works_at_once(instances: Instances, issued: IssuedKey) -> None:
    """The key a rotation returns authenticates on the other instance right away."""
    instances.on(instances.second)
    async with db_session() as db:
        rotated = await rotate_key(session=db, tenant_id=issued.tenant_id, key_id=issued.id)
    instances.on(instances.first)
    try:
        assert (await _auth(rotated.key)).key_id == rotated.id
    finally:
        await instances.first.delete(apikey_cache_key(rotated.prefix))


async def test_a_revoked_key_is_refused_from_the_cache(
    instances: Instances, issued: IssuedKey, db_lookups: list[str]
) -> None:
    """After revocation the revoked row is cached too: repeated use is 401 without a DB read."""
    instances.on(instances.first)
    async with db_session() as db:
        await revoke_key(session=db, tenant_id=issued.tenant_id, key_id=issued.id)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await _auth(issued.key)
    assert db_lookups == [issued.prefix]


async def test_unknown_prefixes_are_not_cached(
    instances: Instances, schema: None, real_redis: redis.Redis
) -> None:
    """A well-formed key that was never issued leaves nothing in Redis (no writes on demand)."""
    instances.on(instances.first)
    prefix = os.urandom(6).hex()
    with pytest.raises(Unauthorized):
        await _auth(f"asc_{prefix}_{'s' * 43}")
    assert not real_redis.exists(apikey_cache_key(prefix))


async def test_cache_key_is_namespaced_per_prefix_and_holds_no_secret(
    instances: Instances, issued: IssuedKey, real_redis: redis.Redis
) -> None:
    """The only entry is `ascent:apikey:<prefix>`; neither its name nor value has the secret."""
    instances.on(instances.first)
    await _auth(issued.key)
    secret = issued.key.split("_", 2)[2]
    names = [n.decode() for n in real_redis.scan_iter(match=f"*{issued.prefix}*")]
    value = real_redis.get(f"ascent:apikey:{issued.prefix}")
    assert names == [f"ascent:apikey:{issued.prefix}"]
    assert value is not None and secret not in value.decode() and issued.key not in value.decode()


async def test_entries_expire_after_the_configured_ttl(
    instances: Instances, issued: IssuedKey, real_redis: redis.Redis
) -> None:
    """A cached lookup carries ASCENT_AUTH_CACHE_SECONDS as its TTL (default 60)."""
    instances.on(instances.first)
    await _auth(issued.key)
    assert 0 < real_redis.ttl(apikey_cache_key(issued.prefix)) <= 60


async def test_no_cache_without_redis_url(
    schema: None, issued: IssuedKey, db_lookups: list[str]
) -> None:
    """Without REDIS_URL nothing is cached, not even in process: each request reads the DB."""
    assert cache_mod.get_cache() is None
    await _auth(issued.key)
    await _auth(issued.key)
    assert db_lookups == [issued.prefix, issued.prefix]


async def test_zero_ttl_disables_the_cache(
    instances: Instances, issued: IssuedKey, db_lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASCENT_AUTH_CACHE_SECONDS=0 turns the cache off even with REDIS_URL set."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_AUTH_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    instances.on(instances.first)
    await _auth(issued.key)
    await _auth(issued.key)
    assert db_lookups == [issued.prefix, issued.prefix]


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """REDIS_URL points at a port nothing listens on."""
    _use_redis(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")


async def test_redis_down_falls_back_to_the_database(dead_redis: None, issued: IssuedKey) -> None:
    """With Redis unreachable, a valid key still authenticates (from the database)."""
    principal = await _auth(issued.key)
    assert principal == Principal(tenant_id=issued.tenant_id, key_id=issued.id)


async def test_redis_outage_warns_once(
    dead_redis: None, issued: IssuedKey, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage is logged as one warning, not one per request."""
    with caplog.at_level(logging.WARNING, logger="shared.platform.cache"):
        for _ in range(3):
            await _auth(issued.key)
    assert len([r for r in caplog.records if r.name == "shared.platform.cache"]) == 1


async def test_revoke_during_an_outage_is_503_but_revoked(
    dead_redis: None, issued: IssuedKey
) -> None:
    """Revoking while Redis is down commits the revocation and answers 503 (retry to confirm)."""
    async with db_session() as db:
        with pytest.raises(ServiceUnavailable):
            await revoke_key(session=db, tenant_id=issued.tenant_id, key_id=issued.id)
    with pytest.raises(Unauthorized):
        await _auth(issued.key)


# --- e2e: two dev host processes sharing one database and one Redis --------------------------


@pytest.fixture(scope="module")
def cached_hosts(
    tmp_path_factory: pytest.TempPathFactory, real_redis: redis.Redis
) -> Iterator[tuple[DevHost, DevHost]]:
    """Two dev hosts on one database (Postgres when DATABASE_URL is set) and the real Redis."""
    data_dir: Path = tmp_path_factory.mktemp("authcache")
    env = {"REDIS_URL": REDIS_URL, "ASCENT_ADMIN_KEY": ADMIN_KEY}
    first = start_devhost(data_dir, database_url=POSTGRES_URL, extra_env=env)
    try:
        second = start_devhost(
            data_dir,
            database_url=POSTGRES_URL,
            extra_env={**env, "ASCENT_DEV_API_KEY": first.api_key},
        )
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _status(host: DevHost, key: str) -> int:
    with host.client(key) as client:
        return client.get("/agents").status_code


def _cached_on_both(hosts: tuple[DevHost, DevHost], issued: dict[str, Any]) -> bool:
    """Use the key on both hosts (200 each); return whether its lookup is now in Redis."""
    first, second = hosts
    assert (_status(first, issued["key"]), _status(second, issued["key"])) == (200, 200)
    return bool(_redis().exists(apikey_cache_key(issued["prefix"])))


@pytest.mark.e2e
def test_e2e_revoke_is_401_at_once_on_the_other_host(
    cached_hosts: tuple[DevHost, DevHost], real_redis: redis.Redis
) -> None:
    """Cached on both hosts, revoked through host one: host two refuses the very next request."""
    first, second = cached_hosts
    _, issued = new_tenant_with_key(first.base_url)
    assert _cached_on_both(cached_hosts, issued)
    with admin(first.base_url) as client:
        revoked = client.delete(f"/platform/tenants/{issued['tenant_id']}/keys/{issued['id']}")
    assert revoked.status_code == 200
    assert (_status(second, issued["key"]), _status(first, issued["key"])) == (401, 401)
    real_redis.delete(apikey_cache_key(issued["prefix"]))


@pytest.mark.e2e
def test_e2e_rotate_is_401_at_once_for_the_old_key(
    cached_hosts: tuple[DevHost, DevHost], real_redis: redis.Redis
) -> None:
    """Cached on both hosts, rotated through host two: the old key is 401 on both at once."""
    first, second = cached_hosts
    _, issued = new_tenant_with_key(first.base_url)
    assert _cached_on_both(cached_hosts, issued)
    with admin(second.base_url) as client:
        rotated = client.post(f"/platform/tenants/{issued['tenant_id']}/keys/{issued['id']}/rotate")
    assert rotated.status_code == 201
    assert (_status(first, issued["key"]), _status(second, issued["key"])) == (401, 401)
    real_redis.delete(
        apikey_cache_key(issued["prefix"]), apikey_cache_key(rotated.json()["prefix"])
    )
