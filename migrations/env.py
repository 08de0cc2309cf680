"""Alembic environment: Ascent's SQLModel metadata, async engines, batch mode on SQLite.

Two ways in: `shared.db.migrate.migrate()` hands over a live connection in
`config.attributes["connection"]`; the `alembic` CLI builds an async engine from settings
(DATABASE_URL, else the embedded SQLite file) or from `-x url=...`.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from shared.db import memory_models, models, security_models  # noqa: F401  (register the tables)
from shared.db.migrate import include_object, load_models

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Every `shared/db/*models.py` module registers its tables: a new models module is covered by
# autogenerate and by tests/integration/test_migrations.py without an edit here.
load_models()
target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render SQLModel's AutoString as a plain sa.String so revisions need no sqlmodel import."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a sync connection (SQLite gets batch mode for ALTERs)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _async_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from shared.core.settings import get_settings

    return get_settings().sqlalchemy_url


async def run_async_migrations() -> None:
    """Build an async engine for the URL and run the migrations through it."""
    engine = create_async_engine(_async_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for `alembic upgrade head --sql` without a database."""
    context.configure(
        url=_async_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_async_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared_connection := config.attributes.get("connection")) is not None:
    do_run_migrations(shared_connection)
else:
    asyncio.run(run_async_migrations())
