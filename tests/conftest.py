"""Fixtures every tier shares: isolated settings, blocked real models, the dev host process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from sqlalchemy.ext.asyncio import AsyncEngine

from local.devhost_process import (
    SETTINGS_ENV,
    DevHostProcess,
    spawn,
    wait_healthy,
)

SESSION_DB_PREFIX = "ascent_test"


def _alive(pid: int) -> bool:
    """Whether a process with this id still runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _session_database(server_url: str | None) -> str | None:
    """A new database on `server_url` for this test process (one per xdist worker).

    The server's `test` database is shared by every dev host and test run on the machine, and
    parallel workers would race each other's migrations and rows on it. Each test process gets
    `ascent_test_<worker>_<pid>` instead, dropped when the session ends; databases left by a
    killed run (their pid is gone) are dropped here.
    """
    if not server_url:
        return None
    import psycopg  # only when a Postgres URL is set
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{SESSION_DB_PREFIX}_{worker}_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{SESSION_DB_PREFIX}_%",)
        ).fetchall()
        for (stale,) in rows:
            pid = stale.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')  # generated name, never user input
    return server.set(database=name).render_as_string(hide_password=False)


# Captured once, before any test touches the environment: CI (and local/test.sh) set it.
SERVER_URL = os.environ.get("DATABASE_URL") or None
POSTGRES_URL = _session_database(SERVER_URL)
LIVE_KEY = os.environ.get("OPENAI_API_KEY") or None
# How long a test's leftover background tasks may take to end before they are cancelled.
SETTLE_SECONDS = 2.0


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop this process's Postgres database; dev hosts still attached are disconnected."""
    if not (SERVER_URL and POSTGRES_URL):
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(SERVER_URL).set(drivername="postgresql")
    name = make_url(POSTGRES_URL).database
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip live tests without a key and Postgres tests without a database, saying why."""
    for item in items:
        if item.get_closest_marker("live") and not LIVE_KEY:
            item.add_marker(pytest.mark.skip(reason="live: set OPENAI_API_KEY to run"))
        if item.get_closest_marker("postgres") and not POSTGRES_URL:
            item.add_marker(pytest.mark.skip(reason="postgres: set DATABASE_URL to run"))


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from the embedded defaults in its own data dir, with no cached state."""
    from shared.core.settings import get_settings
    from shared.db.direct import close_direct
    from shared.db.engine import _sessionmaker, get_engine
    from shared.platform.llm import get_model_provider
    from shared.platform.notify import get_notifier

    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASCENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASCENT_ENV", "test")
    close_direct()
    for cached in (get_settings, get_engine, _sessionmaker, get_model_provider, get_notifier):
        cached.cache_clear()
    yield
    close_direct()
    for cached in (get_settings, get_engine, _sessionmaker, get_model_provider, get_notifier):
        cached.cache_clear()


@pytest.fixture(autouse=True)
async def settle_background_tasks(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Tasks a test leaves running (outbox drains, run tasks) end with it, not later in GC.

    A task still holding a pooled connection when its test's loop closes would be collected
    later, and SQLAlchemy's "non-checked-in connection" complaint (or aiosqlite's worker
    thread, finding the loop closed) would fail an unrelated test. So: let leftover tasks end,
    cancel the stragglers, then dispose every engine the test built. Fixtures may already have
    disposed theirs (this teardown runs last), but a task that outlived that opened new
    connections, which only this final dispose closes.
    """
    from shared.db import engine as engine_module

    built: list[AsyncEngine] = []
    build = engine_module.build_engine

    def tracking_build(url: str) -> AsyncEngine:
        engine = build(url)
        built.append(engine)
        return engine

    monkeypatch.setattr(engine_module, "build_engine", tracking_build)
    yield
    # Long-lived listeners (notifications, the poll fallback) stop first: they never end alone.
    from shared.db.direct import aclose_direct
    from shared.platform.notify import close_notifier
    from shared.runs.engine import close_leases
    from shared.runs.watch import close_pollers

    await close_notifier()
    await close_pollers()
    await close_leases()
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if leftover:
        # First let them end on their own (outbox drains are bounded, session closes are
        # quick): a task cancelled in the middle of a statement strands its connection.
        _, pending = await asyncio.wait(leftover, timeout=SETTLE_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    await aclose_direct()
    for engine in built:
        await engine.dispose()


@pytest.fixture(autouse=True)
def block_real_models(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that reaches a real model provider fails, unless it is marked live."""
    if request.node.get_closest_marker("live"):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a real model was called from a test not marked live")

    for cls in (OpenAIResponsesModel, OpenAIChatCompletionsModel):
        monkeypatch.setattr(cls, "get_response", refuse)
        monkeypatch.setattr(cls, "stream_response", refuse)


DevHost = DevHostProcess  # the launcher lives in local/devhost_process.py, shared with bench/


def start_devhost(
    data_dir: Path, *, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> DevHost:
    """Start a dev host process on a free port and wait until /api/health answers."""
    host = spawn_devhost(data_dir, database_url=database_url, extra_env=extra_env)
    wait_healthy(host, poll=0.1)
    return host


def spawn_devhost(
    data_dir: Path, *, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> DevHost:
    """Start a dev host process on a free port with the tests' settings (not yet healthy)."""
    env = {
        "ASCENT_ENV": "test",
        # Request-rate limits are off unless a test sets them (extra_env): tests that poll a
        # shared host for a minute would otherwise meet the per-key limit, timing-dependently.
        "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
        "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return spawn(data_dir, env=env)


BACKENDS = [
    pytest.param(None, id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=BACKENDS)
def devhost(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host shared by a test module, once on SQLite and once on Postgres (when set)."""
    url = POSTGRES_URL if request.param == "postgres" else None
    host = start_devhost(tmp_path_factory.mktemp("devhost"), database_url=url)
    yield host
    host.stop()
