"""Apply the schema with Alembic (`upgrade head`), from the dev host or the `migrate` job."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

import shared.db

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
# The revision that matches the schema `SQLModel.metadata.create_all` built before Alembic
# owned it: a database with those tables but no version is stamped here, then upgraded.
BASELINE_REVISION = "0001_baseline"


# The Agents SDK defines these (SQLAlchemySession); the baseline revision creates them with the
# SDK's exact definition, and autogenerate comparisons leave them alone.
SDK_TABLES = frozenset({"agent_sessions", "agent_messages"})


def load_models() -> None:
    """Import every `shared/db/*models.py` module so all tables are on SQLModel.metadata."""
    for module in pkgutil.iter_modules(shared.db.__path__):
        if module.name.endswith("models"):
            importlib.import_module(f"shared.db.{module.name}")


# Columns whose type depends on what the database can do: store_items.embedding is
# `vector(n)` on Postgres with pgvector and bytes elsewhere (0016_native_vectors), so the models
# declare it as bytes and comparisons leave it alone.
DATABASE_TYPED_COLUMNS = frozenset({("store_items", "embedding")})
# Indexes that exist only where the database supports them: the HNSW index (pgvector only).
DATABASE_ONLY_INDEXES = frozenset({"ix_store_items_embedding_hnsw"})
# The revision whose `ensure_native_vectors()` migrate() re-applies after every upgrade.
VECTOR_REVISION = "0016_native_vectors"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """Alembic filter: keep the SDK's session tables (and their indexes) and the
    database-typed columns (DATABASE_TYPED_COLUMNS) and database-only indexes
    (DATABASE_ONLY_INDEXES) out of comparisons."""
    if type_ == "table" and name in SDK_TABLES:
        return False
    if type_ == "index" and name in DATABASE_ONLY_INDEXES:
        return False
    table = getattr(obj, "table", None)
    table_name = getattr(table, "name", None)
    if type_ == "column" and (table_name, name) in DATABASE_TYPED_COLUMNS:
        return False
    return not (table is not None and table_name in SDK_TABLES)


def alembic_config() -> Config:
    """The Alembic configuration of this checkout (alembic.ini, migrations/), logging untouched."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logger"] = False
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables and "tenants" in tables:
        log.info("schema predates Alembic; stamping %s", BASELINE_REVISION)
        command.stamp(config, BASELINE_REVISION)
    command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Run `alembic upgrade <revision>` on the engine's database, in one transaction."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Run `alembic downgrade <revision>` (e.g. "-1") on the engine's database."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


def _ensure_native_vectors(connection: Connection) -> bool:
    script = ScriptDirectory.from_config(alembic_config()).get_revision(VECTOR_REVISION)
    if script is None:  # pragma: no cover - the revision ships with this module
        raise RuntimeError(f"migration {VECTOR_REVISION} is missing")
    native: bool = script.module.ensure_native_vectors(connection)
    return native


async def ensure_native_vectors(engine: AsyncEngine) -> bool:
    """Make store_items.embedding a pgvector column if the database can have it now.

    Revision 0016 makes it `vector(n)` only where `vector` was available when it ran; this
    re-applies the same step (the revision's own `ensure_native_vectors`), so a database whose
    extension is allow-listed later is converted on the next `python -m aca_jobs migrate`.
    It never fails the caller: without the extension or the privilege it logs and returns False.
    Before 0016 the column is packed text, which this leaves alone (0016 converts it).
    """
    if engine.dialect.name != "postgresql":
        return False
    async with engine.begin() as conn:
        return await conn.run_sync(_ensure_native_vectors)


async def migrate(engine: AsyncEngine, *, attempts: int = 5) -> None:
    """Upgrade the schema to head; safe to run from several processes at once (losers retry).

    No advisory locks (CockroachDB and SQLite lack them): two processes racing on the same
    CREATE TABLE see one win; the other's transaction fails, it retries and finds the version
    already at head, so its upgrade is a no-op. Then `ensure_native_vectors`.
    """
    for attempt in range(1, attempts + 1):
        try:
            await upgrade(engine, "head")
            break
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts:
                raise
            log.info("schema upgrade raced with another process; retrying (%d)", attempt)
            await asyncio.sleep(0.2 * attempt)
    await ensure_native_vectors(engine)
