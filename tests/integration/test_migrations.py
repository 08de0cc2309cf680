"""Alembic owns the schema: it builds an empty database, steps back, and matches the models."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from agents.extensions.memory import SQLAlchemySession
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from local.devhost_process import ROOT
from shared.db.migrate import (
    BASELINE_REVISION,
    SDK_TABLES,
    alembic_config,
    downgrade,
    include_object,
    load_models,
    migrate,
    upgrade,
)
from tests.conftest import POSTGRES_URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The async URL of an empty database: a fresh SQLite file, or a fresh Postgres database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    assert POSTGRES_URL is not None
    server = make_url(POSTGRES_URL)
    name = f"ascent_mig_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated here, never user input
    try:
        yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(empty_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the empty database, disposed after the test."""
    eng = create_async_engine(empty_database)
    yield eng
    await eng.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _columns(engine: AsyncEngine) -> set[tuple[str, str]]:
    """The schema's (table, column) pairs: what any revision adds or removes shows here."""

    def read(c: Connection) -> set[tuple[str, str]]:
        inspector = inspect(c)
        return {
            (table, column["name"])
            for table in inspector.get_table_names()
            for column in inspector.get_columns(table)
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def _version(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def _model_diff(conn: Connection) -> list[Any]:
    load_models()
    context = MigrationContext.configure(
        conn, opts={"include_object": include_object, "compare_type": True}
    )
    return list(compare_metadata(context, SQLModel.metadata))


def _sdk_diff(conn: Connection, sdk_metadata: MetaData) -> list[Any]:
    def only_sdk(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in SDK_TABLES

    context = MigrationContext.configure(
        conn, opts={"include_object": only_sdk, "compare_type": True}
    )
    return list(compare_metadata(context, sdk_metadata))


class TestMigrations:
    """The revision chain, on SQLite and on a fresh Postgres database."""

    async def test_upgrade_from_empty_creates_every_table(self, engine: AsyncEngine) -> None:
        """`upgrade head` on an empty database creates every model table and the SDK tables."""
        await upgrade(engine)
        load_models()
        expected = set(SQLModel.metadata.tables) | SDK_TABLES | {"alembic_version"}
        assert expected <= await _tables(engine)
        assert await _version(engine) == _revisions()[-1]

    async def test_downgrade_one_step_and_back(self, engine: AsyncEngine) -> None:
        """Downgrading one revision reaches the previous one, and upgrading again succeeds."""
        await upgrade(engine)
        before = await _columns(engine)
        await downgrade(engine, "-1")
        assert await _version(engine) == _revisions()[-2]
        # <=, not <: a revision may change nothing on a backend (0011_store_vectors adds its
        # column only where pgvector exists; test_migrations_pgvector.py checks it there).
        assert await _columns(engine) <= before
        await upgrade(engine)
        assert await _columns(engine) == before

    async def test_models_match_migrations(self, engine: AsyncEngine) -> None:
        """The migrated schema equals SQLModel.metadata: a model change needs a new revision."""
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(_model_diff)
        assert diff == [], f"models and migrations differ; write a revision: {diff}"

    async def test_sdk_session_tables_match_the_sdk(self, engine: AsyncEngine) -> None:
        """The baseline's agent_sessions/agent_messages equal the Agents SDK's own definition."""
        await upgrade(engine)
        sdk = SQLAlchemySession("probe", engine=engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(_sdk_diff, sdk._metadata)
        assert diff == []
        # and the SDK works on them without creating anything itself
        await sdk.add_items([{"role": "user", "content": "hi"}])
        assert len(await sdk.get_items()) == 1

    async def test_migrate_from_two_processes_at_once(
        self, empty_database: str, engine: AsyncEngine
    ) -> None:
        """Two processes running migrate() on an empty database at once both succeed."""
        code = (
            "import asyncio, sys\n"
            "from sqlalchemy.ext.asyncio import create_async_engine\n"
            "from shared.db.migrate import migrate\n"
            "async def main():\n"
            "    engine = create_async_engine(sys.argv[1])\n"
            "    await migrate(engine)\n"
            "    await engine.dispose()\n"
            "asyncio.run(main())\n"
        )
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, empty_database, cwd=ROOT
            )
            for _ in range(2)
        ]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 120)
        assert codes == [0, 0]
        assert await _version(engine) == _revisions()[-1]

    async def test_pre_alembic_schema_is_stamped_then_upgraded(self, engine: AsyncEngine) -> None:
        """A database built before Alembic (tables, no version) is stamped at the baseline."""
        await upgrade(engine, BASELINE_REVISION)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))
        await migrate(engine)
        assert await _version(engine) == _revisions()[-1]
