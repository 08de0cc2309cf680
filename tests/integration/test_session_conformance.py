"""One conformance suite for every conversation-session backend `build_session` can choose.

Each test runs once per backend: SQLite and Postgres (the SDK's SQLAlchemySession), Redis (the
SDK's RedisSession on the real Redis at 127.0.0.1:6379), Upstash (UpstashRedisSession through
a REST front over that same Redis) and Dapr (the SDK's DaprSession through the `dapr` SDK's
gRPC client, against a fake sidecar). Sessions are built the way the app builds them: settings
from the environment, then `build_session(tenant, thread)`. Every test uses fresh uuid tenants
and threads, so nothing is truncated or flushed: other suites share these databases.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from shared.memory.sessions import (
    SessionBackendName,
    UpstashRedisSession,
    build_session,
    close_clients,
    session_key,
    supports_ttl,
)
from tests.conftest import POSTGRES_URL
from tests.fakes.dapr_sidecar import FakeDaprSidecar, running_sidecar
from tests.fakes.upstash_rest import UpstashRestFront, running_front

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
UPSTASH_TOKEN = "test-upstash-token"
TTL_SECONDS = 2
EXPIRY_DEADLINE_SECONDS = 15.0
ITEMS_PER_PROCESS = 20

# Variables this suite sets; cleared first so the caller's shell cannot leak into a backend.
_SESSION_ENV = (
    "SESSION_BACKEND",
    "SESSION_TTL_SECONDS",
    "REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "DAPR_STATE_STORE",
    "DAPR_HTTP_PORT",
    "DAPR_GRPC_PORT",
    "DAPR_GRPC_ENDPOINT",
    "DAPR_HTTP_ENDPOINT",
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis"),
    pytest.param("upstash", id="upstash"),
    pytest.param("dapr", id="dapr"),
]
_KIND: dict[str, SessionBackendName] = {
    "sqlite": "sql",
    "postgres": "sql",
    "redis": "redis",
    "upstash": "upstash",
    "dapr": "dapr",
}


def _redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def dapr_sidecar() -> Iterator[FakeDaprSidecar]:
    """A fake Dapr sidecar shared by the module."""
    with running_sidecar() as sidecar:
        yield sidecar


@pytest.fixture(scope="module")
def upstash_front() -> Iterator[UpstashRestFront]:
    """An Upstash REST front over the real Redis, shared by the module."""
    with running_front(UPSTASH_TOKEN, REDIS_URL) as front:
        yield front


def _message(text: str) -> Any:
    return {"role": "user", "content": text}


@dataclass
class Backend:
    """A configured backend: its test id, its SESSION_BACKEND, and a fresh tenant."""

    name: str
    kind: SessionBackendName
    tenant: str

    def session(self, thread: str | None = None, *, tenant: str | None = None) -> Any:
        """A session on a thread (a new one unless given), built as the app builds it."""
        return build_session(tenant or self.tenant, thread or uuid.uuid4().hex)


def _configure(name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for var in _SESSION_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SESSION_BACKEND", _KIND[name])
    if name == "postgres":
        assert POSTGRES_URL is not None  # the postgres marker skips without it
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    elif name in ("redis", "upstash"):
        if not _redis_answers():
            pytest.skip(f"{name}: no Redis answers at {REDIS_URL} (start redis-server)")
        if name == "redis":
            monkeypatch.setenv("REDIS_URL", REDIS_URL)
        else:
            front: UpstashRestFront = request.getfixturevalue("upstash_front")
            for var, value in front.env().items():
                monkeypatch.setenv(var, value)
    elif name == "dapr":
        sidecar: FakeDaprSidecar = request.getfixturevalue("dapr_sidecar")
        for var, value in sidecar.env().items():
            monkeypatch.setenv(var, value)


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Backend]:
    """One backend configured through the environment, its clients closed afterwards."""
    from shared.core.settings import get_settings
    from shared.db.engine import get_engine
    from shared.db.migrate import migrate

    name: str = request.param
    _configure(name, monkeypatch, request)
    get_settings.cache_clear()
    await close_clients()
    if _KIND[name] == "sql":
        await migrate(get_engine())
    yield Backend(name, _KIND[name], tenant=f"t-{uuid.uuid4().hex}")
    await close_clients()
    if _KIND[name] == "sql":
        await get_engine().dispose()


@pytest.fixture
def ttl_backend(monkeypatch: pytest.MonkeyPatch, backend: Backend) -> Backend:
    """The backend with SESSION_TTL_SECONDS set (skipped where the store has no TTL)."""
    from shared.core.settings import get_settings

    if not supports_ttl(backend.kind):
        pytest.skip(
            "SQL sessions have no TTL: a retention job, not the store, expires SQL history "
            "(test_reports_whether_it_expires_history asserts supports_ttl('sql') is False)"
        )
    monkeypatch.setenv("SESSION_TTL_SECONDS", str(TTL_SECONDS))
    get_settings.cache_clear()
    return backend


# Writers are forked from a forkserver that preloads this module: a clean process with no
# gRPC or event-loop threads to fork, that pays the import cost once for the whole suite.
_WRITERS = multiprocessing.get_context("forkserver")
_WRITERS.set_forkserver_preload([__name__])
# The forkserver keeps the environment it started with, so each writer gets these explicitly.
_WRITER_ENV = (*_SESSION_ENV, "DATABASE_URL", "ASCENT_DATA_DIR", "ASCENT_ENV")


def _append_worker(
    env: dict[str, str | None], tenant: str, thread: str, tag: str, count: int, barrier: Any
) -> None:
    """Child process: append `count` items one call at a time, after the barrier opens."""
    for var, value in env.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value

    async def append() -> None:
        session = build_session(tenant, thread)
        await session.get_items(limit=1)  # connect before the race starts
        barrier.wait(timeout=60)
        for i in range(count):
            await session.add_items([_message(f"{tag}-{i}")])
        await close_clients()

    asyncio.run(append())


class TestSessionConformance:
    """The `Session` behaviour every backend must give, whatever SESSION_BACKEND says."""

    async def test_builds_the_configured_backend_on_the_thread_key(self, backend: Backend) -> None:
        """build_session returns the backend's session, keyed "<tenant>:<thread>"."""
        from agents.extensions.memory import DaprSession, RedisSession, SQLAlchemySession

        expected = {
            "sql": SQLAlchemySession,
            "redis": RedisSession,
            "upstash": UpstashRedisSession,
            "dapr": DaprSession,
        }[backend.kind]
        session = backend.session("thread-1")
        assert isinstance(session, expected)
        assert session.session_id == session_key(backend.tenant, "thread-1")

    async def test_appended_items_read_back_oldest_first(self, backend: Backend) -> None:
        """Items from several appends read back in append order."""
        session = backend.session()
        await session.add_items([_message("a"), _message("b")])
        await session.add_items([_message("c")])
        assert await session.get_items() == [_message("a"), _message("b"), _message("c")]

    async def test_limit_returns_latest_items_oldest_first(self, backend: Backend) -> None:
        """get_items(limit=N) returns the newest N items, still oldest first."""
        session = backend.session()
        await session.add_items([_message(str(i)) for i in range(5)])
        assert await session.get_items(limit=2) == [_message("3"), _message("4")]

    async def test_new_session_is_empty(self, backend: Backend) -> None:
        """A thread never written to has no history."""
        assert await backend.session().get_items() == []

    async def test_pop_returns_newest_and_removes_it(self, backend: Backend) -> None:
        """pop_item returns the last item and the history no longer holds it."""
        session = backend.session()
        await session.add_items([_message("a"), _message("b")])
        assert await session.pop_item() == _message("b")
        assert await session.get_items() == [_message("a")]

    async def test_pop_on_empty_session_returns_none(self, backend: Backend) -> None:
        """pop_item on an empty history returns None."""
        assert await backend.session().pop_item() is None

    async def test_clear_removes_all_items(self, backend: Backend) -> None:
        """clear_session leaves an empty history that accepts new items."""
        session = backend.session()
        await session.add_items([_message("a"), _message("b")])
        await session.clear_session()
        assert await session.get_items() == []
        await session.add_items([_message("c")])
        assert await session.get_items() == [_message("c")]

    async def test_threads_do_not_share_history(self, backend: Backend) -> None:
        """Two threads of one tenant keep separate histories, including through clear."""
        first, second = backend.session(), backend.session()
        await first.add_items([_message("first")])
        await second.add_items([_message("second")])
        await second.clear_session()
        assert await first.get_items() == [_message("first")]
        assert await second.get_items() == []

    async def test_tenants_do_not_share_a_thread_id(self, backend: Backend) -> None:
        """The same thread id under two tenants is two histories."""
        thread = uuid.uuid4().hex
        mine = backend.session(thread)
        theirs = backend.session(thread, tenant=f"t-{uuid.uuid4().hex}")
        await mine.add_items([_message("mine")])
        assert await theirs.get_items() == []

    async def test_concurrent_appends_from_two_processes_lose_nothing(
        self, backend: Backend
    ) -> None:
        """Two processes appending to one thread at once keep every item, each in order."""
        thread = uuid.uuid4().hex
        env = {var: os.environ.get(var) for var in _WRITER_ENV}
        barrier = _WRITERS.Barrier(2)
        workers = [
            _WRITERS.Process(
                target=_append_worker,
                args=(env, backend.tenant, thread, tag, ITEMS_PER_PROCESS, barrier),
            )
            for tag in ("p1", "p2")
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join, 90)
        assert [w.exitcode for w in workers] == [0, 0]

        texts = [item["content"] for item in await backend.session(thread).get_items()]
        assert len(texts) == 2 * ITEMS_PER_PROCESS
        for tag in ("p1", "p2"):
            assert [t for t in texts if t.startswith(f"{tag}-")] == [
                f"{tag}-{i}" for i in range(ITEMS_PER_PROCESS)
            ]

    async def test_reports_whether_it_expires_history(self, backend: Backend) -> None:
        """Only the SQL backend reports no TTL support: a retention job expires its history."""
        assert supports_ttl(backend.kind) is (backend.kind != "sql")

    async def test_history_expires_after_ttl(self, ttl_backend: Backend) -> None:
        """With SESSION_TTL_SECONDS set, a thread's history disappears once the TTL passes."""
        session = ttl_backend.session()
        await session.add_items([_message("short-lived")])
        assert await session.get_items() == [_message("short-lived")]
        deadline = time.monotonic() + EXPIRY_DEADLINE_SECONDS
        while await session.get_items():
            assert time.monotonic() < deadline, "history outlived its TTL"
            await asyncio.sleep(0.05)
