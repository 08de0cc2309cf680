"""Fixtures for the event tests: a migrated database (SQLite, or Postgres when set) and a tenant."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database

DB_BACKENDS = [
    pytest.param(None, id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=DB_BACKENDS)
async def tenant(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A new tenant on a migrated database of this test (a SQLite file or a new Postgres one).

    Not the shared Postgres database: `drain()` publishes every due event of the database,
    so another test run's outbox rows there would interleave with (or steal) this test's.
    """
    from shared.core.settings import get_settings
    from shared.db import repo
    from shared.db.engine import _sessionmaker, db_session, get_engine
    from shared.db.migrate import migrate

    with contextlib.ExitStack() as stack:
        if request.param == "postgres" and POSTGRES_URL:
            url = stack.enter_context(fresh_postgres_database(POSTGRES_URL, prefix="ascent_ev"))
            monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("ASCENT_EVENTS_RETRY_SECONDS", "0.01")
        for cached in (get_settings, get_engine, _sessionmaker):
            cached.cache_clear()
        try:
            await migrate(get_engine())
            tenant_id = f"ev-{uuid.uuid4().hex[:12]}"
            async with db_session() as db:
                await repo.create_tenant(session=db, name="events test", tenant_id=tenant_id)
                await db.commit()
            yield tenant_id
        finally:
            # Closed before the database is dropped, so no pooled connection outlives it.
            await get_engine().dispose()
            for cached in (get_settings, get_engine, _sessionmaker):
                cached.cache_clear()


async def record(tenant_id: str, subject: str, type_: str, **data: Any) -> str:
    """Record one event in its own committed transaction; return its id."""
    from shared.db.engine import db_session
    from shared.outbox.events import record_event

    async with db_session() as db:
        event_id = await record_event(
            session=db, tenant_id=tenant_id, type=type_, subject=subject, data=dict(data)
        )
        await db.commit()
    return event_id


async def until(check: Callable[[], Awaitable[bool]], *, seconds: float = 20.0) -> None:
    """Poll `check` (which may act, e.g. drain) until it is true; fail after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0)
