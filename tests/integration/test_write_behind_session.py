"""The write-behind SQL session of synchronous runs: history joins the run's own transaction.

`WriteBehindSession` wraps the SDK's `SQLAlchemySession`: reads once, keeps appends in memory
and writes them in the caller's transaction. Each test runs on SQLite and on Postgres, with a
fresh thread id (nothing is truncated: other suites share the Postgres database), and reads
back through the SDK's own session, so the rows it writes are the SDK's format.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.memory.sessions import WriteBehindSession, build_session
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


def _write_behind(thread: str) -> WriteBehindSession:
    inner = build_session("wb-tenant", thread)
    assert not isinstance(inner, WriteBehindSession)
    return WriteBehindSession(inner)  # type: ignore[arg-type]


async def test_appended_items_are_read_back_but_not_stored_before_a_flush(thread: str) -> None:
    """Reads include pending items at once; the database holds none of them until a flush."""
    session = _write_behind(thread)
    await session.add_items([_message("one"), _message("two")])
    assert _texts(await session.get_items()) == ["one", "two"]
    assert await build_session("wb-tenant", thread).get_items() == []


async def test_a_committed_flush_stores_the_items_after_the_earlier_history(thread: str) -> None:
    """History written earlier comes first; flushed items follow in order, as the SDK reads them."""
    from shared.db.engine import db_session

    await build_session("wb-tenant", thread).add_items([_message("earlier")])
    session = _write_behind(thread)
    await session.add_items([_message("question"), _message("answer")])
    async with db_session() as db:
        await session.flush_into(db)
        await db.commit()
    stored = await build_session("wb-tenant", thread).get_items()
    assert _texts(stored) == ["earlier", "question", "answer"]
    assert session.pending == []


async def test_a_rolled_back_flush_stores_nothing(thread: str) -> None:
    """The items share the caller's fate: when its transaction rolls back, none is stored."""
    from shared.db.engine import db_session

    session = _write_behind(thread)
    await session.add_items([_message("lost")])
    async with db_session() as db:
        await session.flush_into(db)
        await db.rollback()
    assert await build_session("wb-tenant", thread).get_items() == []


async def test_pop_takes_a_pending_item_first_then_a_stored_one(thread: str) -> None:
    """`pop_item` removes the newest item: pending ones before those already stored."""
    await build_session("wb-tenant", thread).add_items([_message("stored")])
    session = _write_behind(thread)
    await session.add_items([_message("pending")])
    assert (await session.pop_item()) == _message("pending")
    assert (await session.pop_item()) == _message("stored")
    assert await session.get_items() == []
    assert await build_session("wb-tenant", thread).get_items() == []


async def test_get_items_honours_the_limit_over_stored_and_pending(thread: str) -> None:
    """A limit returns the newest items across what is stored and what is pending."""
    await build_session("wb-tenant", thread).add_items([_message("a"), _message("b")])
    session = _write_behind(thread)
    await session.add_items([_message("c")])
    assert _texts(await session.get_items(limit=2)) == ["b", "c"]


async def test_load_reads_the_stored_history_in_the_callers_transaction(thread: str) -> None:
    """`load(db)` reads what the SDK stored, oldest first, through the caller's session."""
    from shared.db.engine import db_session

    await build_session("wb-tenant", thread).add_items([_message("x"), _message("y")])
    session = _write_behind(thread)
    async with db_session() as db:
        await session.load(db)
    await session.add_items([_message("z")])
    assert _texts(await session.get_items()) == ["x", "y", "z"]
