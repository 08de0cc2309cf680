"""The process-wide async engine, built lazily from settings and shared with the SDK session."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.settings import get_settings

# SQLite waits this long for another writer (another dev host process) before failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # No driver-managed transactions: `_begin_immediate` opens each one (SQLAlchemy's documented
    # recipe for the sqlite drivers), so SAVEPOINTs nest and nothing begins DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL survives a process crash; only an OS crash can lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def build_engine(url: str) -> AsyncEngine:
    """Create an async engine for a SQLAlchemy URL, with SQLite tuned for several processes."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=20, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    size = get_settings().db_pool_size
    engine = create_async_engine(url, pool_size=size, max_overflow=size, pool_pre_ping=True)
    if get_settings().database_auth == "entra":
        event.listen(engine.sync_engine, "do_connect", entra_password)
    return engine


def _begin_immediate(conn: Any) -> None:
    # A transaction that reads, then writes, fails at once with "database is locked" when
    # another connection wrote in between (SQLite cannot upgrade its stale snapshot); taking the
    # write lock at BEGIN makes it wait its turn instead (busy timeout). The hot paths read and
    # write through shared/db/direct.py; this engine serves the rest.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def entra_password(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    # Azure Database for PostgreSQL with Entra auth only: every new connection presents a
    # fresh token (the credential caches it) as its password; nothing secret is configured.
    # Function-local for cold start: azure-identity loads only where Entra auth is used.
    from shared.core.credentials import postgres_token

    cparams["password"] = postgres_token()


@lru_cache(maxsize=1)
def get_engine() -> AsyncEngine:
    """Return the process-wide engine for the configured database (created on first use)."""
    return build_engine(get_settings().sqlalchemy_url)


@lru_cache(maxsize=1)
def _sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), class_=AsyncSession, expire_on_commit=False)


def db_session() -> AsyncSession:
    """Open a unit of work on the process-wide engine (use as an async context manager)."""
    return _sessionmaker()()
