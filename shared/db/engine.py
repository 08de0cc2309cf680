"""The process-wide async engine, built lazily from settings and shared with the SDK session.

It serves everything but the run engine's hot path, which reads and writes through
shared/db/direct.py (one batched writer; on SQLite the process's only frequent writer). On
SQLite its transactions begin DEFERRED, as the driver does: readers never block the writer and
a transaction that only reads never fails. One that reads, then writes, while another
connection commits in between gets "database is locked" (SQLite cannot upgrade a stale
snapshot); the paths that write concurrently go through the direct writer for that reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.services import service
from shared.core.settings import get_settings

# SQLite waits this long for another writer (another dev host process) before failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000


# The JSON escape of a UTF-16 surrogate (U+D800..U+DFFF), in either case.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def load_stored_json(text: str | bytes) -> Any:
    """Decode a stored JSON column, with lone surrogates replaced by U+FFFD.

    The API refuses such text at its boundary (shared/api/unstorable.py), but rows written
    before it did hold some (Postgres `json` and SQLite keep the escape `\\udfff` as given),
    and a lone surrogate cannot be encoded into a UTF-8 answer: served as U+FFFD, the row
    still renders instead of failing every read of its tenant.
    """
    if isinstance(text, bytes):  # psycopg hands the column's bytes
        text = text.decode("utf-8")
    value = json.loads(text)
    if not _SURROGATE_ESCAPE.search(text):
        return value  # the common case: nothing to repair, one regex scan
    return _repaired(value)


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        # A valid pair was already joined by json.loads: only lone halves are left to replace.
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    return value


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL survives a process crash; only an OS crash can lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


SQLITE_POOL_TIMEOUT_SECONDS = 90


def build_engine(url: str) -> AsyncEngine:
    """Create an async engine for a SQLAlchemy URL, with SQLite tuned for several processes."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        # Function-local to keep cold start fast: sqlean and sqlite-vec load only for SQLite.
        from shared.db.sqlite_driver import async_dbapi

        # sqlean's sqlite3 with sqlite-vec (shared/db/sqlite_driver.py), not the stdlib module.
        engine = create_async_engine(
            url,
            pool_size=20,
            max_overflow=0,
            # One machine's file: a checkout waits on this machine's CPU, never on a dead
            # server, so it waits longer than the default 30 s before answering 503.
            pool_timeout=SQLITE_POOL_TIMEOUT_SECONDS,
            module=async_dbapi(),
            json_deserializer=load_stored_json,
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    size = get_settings().db_pool_size
    engine = create_async_engine(
        url,
        pool_size=size,
        max_overflow=size,
        pool_pre_ping=True,
        json_deserializer=load_stored_json,
    )
    if get_settings().database_auth == "entra":
        event.listen(engine.sync_engine, "do_connect", entra_password)
    return engine


def entra_password(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    # Azure Database for PostgreSQL with Entra auth only: every new connection presents a
    # fresh token (the credential caches it) as its password; nothing secret is configured.
    # Function-local for cold start: azure-identity loads only where Entra auth is used.
    from shared.core.credentials import postgres_token

    cparams["password"] = postgres_token()


@service("engine")
def get_engine() -> AsyncEngine:
    """Return the process-wide engine for the configured database (created on first use)."""
    return build_engine(get_settings().sqlalchemy_url)


@service("db_sessions")
def _sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), class_=AsyncSession, expire_on_commit=False)


def db_session() -> AsyncSession:
    """Open a unit of work on the process-wide engine (use as an async context manager)."""
    return _sessionmaker()()
