"""A run's SQL history: read before it starts, written in the transaction of its outcome.

`HistoryBuffer` keeps a run's appends in memory; `stage_history` writes them on the outcome
unit's connection (shared/db/direct.py), `read_history` and `clear_history` read and delete on
one. Each test runs on SQLite and on Postgres, with a fresh thread id (nothing is truncated:
other suites share the Postgres database), and reads back through the SDK's own
`SQLAlchemySession`, so the rows written are the SDK's format.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.db import direct
from shared.db.direct import Tx
from shared.memory.sessions import (
    HistoryBuffer,
    build_session,
    clear_history,
    read_history,
    session_key,
    stage_history,
)
from tests.conftest import POSTGRES_URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _message(text: str) -> Any:
    return {"role": "user", "content": text}


def _texts(items: list[Any]) -> list[str]:
    return [str(item["content"]) for item in items]


@pytest.fixture(params=BACKENDS)
async def thread(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A new thread id on a migrated SQLite or Postgres database (SQL session backend)."""
    from shared.core.settings import get_settings
    from shared.db.engine import _sessionmaker, get_engine
    from shared.db.migrate import migrate

    if request.param == "postgres":
        assert POSTGRES_URL is not None
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("SESSION_BACKEND", "sql")
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()
    await migrate(get_engine())
    yield str(uuid.uuid4())
    await get_engine().dispose()
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


TENANT = "hb-tenant"


def _sid(thread: str) -> str:
    return session_key(TENANT, thread)


class Rollback(Exception):
    """Raised by a unit to undo its writes."""


async def test_appended_items_are_read_back_but_not_stored(thread: str) -> None:
    """A buffer shows stored history then its own appends; nothing reaches the database."""
    buffer = HistoryBuffer(_sid(thread), [_message("before")])
    await buffer.add_items([_message("one"), _message("two")])
    assert _texts(await buffer.get_items()) == ["before", "one", "two"]
    assert _texts(await buffer.get_items(limit=2)) == ["one", "two"]
    assert await build_session(TENANT, thread).get_items() == []


async def test_staged_items_commit_after_the_earlier_history(thread: str) -> None:
    """Items staged in a committed unit follow the stored history, readable by the SDK."""
    await build_session(TENANT, thread).add_items([_message("stored")])
    buffer = HistoryBuffer(
        _sid(thread), await direct.read(lambda tx: read_history(tx.conn, _sid(thread)))
    )
    await buffer.add_items([_message("new")])
    await direct.write(lambda tx: stage_history(tx.conn, _sid(thread), buffer.pending))
    assert _texts(await build_session(TENANT, thread).get_items()) == ["stored", "new"]


async def test_a_rolled_back_unit_stores_nothing(thread: str) -> None:
    """When the outcome's transaction is undone, the turn's history is not kept either."""

    def unit(tx: Tx) -> None:
        stage_history(tx.conn, _sid(thread), [_message("lost")])
        raise Rollback

    with pytest.raises(Rollback):
        await direct.write(unit)
    assert await build_session(TENANT, thread).get_items() == []


async def test_pop_takes_only_this_runs_items(thread: str) -> None:
    """A refused input is popped from the run's own items; stored history is never popped."""
    buffer = HistoryBuffer(_sid(thread), [_message("stored")])
    await buffer.add_items([_message("refused")])
    assert _texts([await buffer.pop_item()]) == ["refused"]
    assert await buffer.pop_item() is None
    assert _texts(await buffer.get_items()) == ["stored"]


async def test_clear_history_deletes_the_thread_history(thread: str) -> None:
    """clear_history removes every item of the session (a stateless run's scratch thread)."""
    await build_session(TENANT, thread).add_items([_message("a"), _message("b")])
    await direct.write(lambda tx: clear_history(tx.conn, _sid(thread)))
    assert await direct.read(lambda tx: read_history(tx.conn, _sid(thread))) == []
