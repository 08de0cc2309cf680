"""The hot path's database access (shared/db/direct.py): batched writes, isolated units, waiting.

On SQLite and on Postgres: units written together share one transaction but fail alone, and
post-commit callbacks run only for what committed. On SQLite: while another connection holds
the write lock, a write waits its turn instead of answering "database is locked".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select

from shared.db import direct
from shared.db.direct import Tx
from shared.db.models import Tenant, utcnow
from shared.db.sqlite_driver import sqlite_module
from tests.conftest import BACKENDS, POSTGRES_URL

TENANTS = Tenant.__table__  # type: ignore[attr-defined]


class Refused(Exception):
    """A unit's own failure."""


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A migrated SQLite file, then the machine's Postgres."""
    from shared.core.settings import get_settings
    from shared.db.engine import get_engine
    from shared.db.migrate import migrate

    if request.param == "postgres":
        assert POSTGRES_URL is not None
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    get_settings.cache_clear()
    await migrate(get_engine())
    yield request.param or "sqlite"
    await get_engine().dispose()


def _add(name: str) -> direct.Unit[str]:
    """A unit inserting a tenant called `name`; its id."""

    def unit(tx: Tx) -> str:
        tenant_id = f"direct-{uuid.uuid4().hex[:12]}"
        tx.conn.execute(insert(TENANTS), {"id": tenant_id, "name": name, "created_at": utcnow()})
        return tenant_id

    return unit


def _fail_after_insert(tx: Tx) -> str:
    _add("undone")(tx)
    raise Refused


async def _names(ids: list[str]) -> set[str]:
    def unit(tx: Tx) -> set[str]:
        rows = tx.conn.execute(select(TENANTS.c.name).where(TENANTS.c.id.in_(ids)))
        return {r.name for r in rows}

    return await direct.read(unit)


async def test_a_failing_unit_is_undone_alone_and_its_neighbours_commit(backend: str) -> None:
    """Units written at once share a batch; the one that raises is rolled back alone."""
    first, broken, last = await asyncio.gather(
        direct.write(_add("first")),
        direct.write(_fail_after_insert),
        direct.write(_add("last")),
        return_exceptions=True,
    )
    assert isinstance(broken, Refused)
    assert isinstance(first, str) and isinstance(last, str)
    assert await _names([first, last]) == {"first", "last"}

    def undone(tx: Tx) -> int:
        return len(tx.conn.execute(select(TENANTS.c.id).where(TENANTS.c.name == "undone")).all())

    assert await direct.read(undone) == 0


async def test_post_commit_callbacks_run_only_for_committed_units(backend: str) -> None:
    """`tx.after_commit` runs for a committed unit, never for a rolled-back one."""
    ran: list[str] = []

    def committed(tx: Tx) -> None:
        _add("kept")(tx)
        tx.after_commit(lambda: ran.append("kept"))

    def rolled_back(tx: Tx) -> None:
        tx.after_commit(lambda: ran.append("undone"))
        raise Refused

    results = await asyncio.gather(
        direct.write(committed), direct.write(rolled_back), return_exceptions=True
    )
    assert isinstance(results[1], Refused)
    assert ran == ["kept"]


async def test_concurrent_writes_commit_in_fewer_transactions_than_units(backend: str) -> None:
    """50 writes submitted together are group-committed: fewer commits than units."""
    commits: list[int] = []
    writer = direct.get_direct()
    engine = writer._loop_engine if isinstance(writer, direct.SqliteDirect) else writer._engine
    sync_engine = getattr(engine, "sync_engine", engine)

    def count(_conn: object) -> None:
        commits.append(1)

    event.listen(sync_engine, "commit", count)
    try:
        ids = await asyncio.gather(*(direct.write(_add(f"n{i}")) for i in range(50)))
    finally:
        event.remove(sync_engine, "commit", count)
    assert len(set(ids)) == 50
    assert 1 <= len(commits) < 50


async def test_a_write_waits_for_another_connections_lock_instead_of_failing(
    backend: str, tmp_path: Path
) -> None:
    """SQLite: while another connection holds the write lock, a write waits (off the event
    loop) and commits once the lock is released; it never answers "database is locked"."""
    if backend != "sqlite":
        pytest.skip("the write lock is SQLite's; Postgres writers lock rows")
    from shared.core.settings import get_settings

    path = get_settings().data_dir / "ascent.db"
    # The process's one SQLite library: a second copy would not see the engine's locks.
    other = sqlite_module().connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.ensure_future(direct.write(_add("patient")))
        # The loop stays free while the write waits: other work runs meanwhile.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not pending.done()
        assert await _names([]) == set()
    finally:
        other.execute("COMMIT")
        other.close()
    tenant_id = await asyncio.wait_for(pending, timeout=30)
    assert await _names([tenant_id]) == {"patient"}


def test_every_sqlite_engine_of_the_process_uses_one_sqlite_library(tmp_path: Path) -> None:
    """The async engine, the direct writer and the backlog reader open SQLite files with the
    same library: two copies in one process drop each other's locks and lose commits."""
    from shared.db.engine import build_engine
    from shared.runs import backlogs

    url = f"sqlite:///{tmp_path / 'one.db'}"
    writer = direct.SqliteDirect(url)
    try:
        libraries = {
            id(build_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}").dialect.dbapi.sqlite),
            id(writer._loop_engine.dialect.dbapi),
            id(writer._wait_engine.dialect.dbapi),
            id(backlogs._engine().dialect.dbapi),
        }
    finally:
        writer.close()
    assert libraries == {id(sqlite_module())}
