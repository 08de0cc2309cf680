"""The SQLite DBAPI behind the async engine: `sqlean.py` with sqlite-vec loaded, where it can be.

The store's semantic search on SQLite runs in the database through sqlite-vec
(shared/memory/vector_search.py), a loadable extension. Python's own `sqlite3` may be built
without extension loading (this project's build machines are), so the engine uses `sqlean.py`
instead: the same `sqlite3` module, built with extension loading, as a wheel. aiosqlite runs any
sqlite3-compatible connection on its thread; this module hands SQLAlchemy's aiosqlite dialect
an adapter whose connections come from sqlean and whose exception classes are sqlean's (so
IntegrityError and "database is locked" are recognised as with sqlite3).

Where sqlean or sqlite-vec is not installed, or the stdlib module cannot load extensions, the
engine uses plain `sqlite3` and search falls back to the exact scan (logged once).

Every SQLite engine of the process (the async one, the direct writer's, the backlog reader's)
takes its connections from `sqlite_module()`. Two SQLite libraries in one process each keep
their own POSIX locks on the same file, and closing a descriptor in one drops the other's
locks: commits were lost that way (a run's start, then its outcome) before every engine shared
one library.
"""

from __future__ import annotations

import logging
import sqlite3
from functools import lru_cache, partial
from types import ModuleType, SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def sqlite_module() -> ModuleType:
    """sqlean's sqlite3 module where installed, else the stdlib's: the one SQLite library every
    engine of this process uses (two copies in one process break each other's POSIX locks)."""
    try:
        import sqlean  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - requirements.txt installs it
        return sqlite3
    module: ModuleType = sqlean.dbapi2
    return module


def _load_vec(connection: Any) -> bool:
    """Load sqlite-vec into a fresh connection; False where extensions cannot be loaded."""
    if not hasattr(connection, "enable_load_extension"):
        return False
    try:
        import sqlite_vec  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - requirements.txt installs it
        return False
    try:
        connection.enable_load_extension(True)
        try:
            sqlite_vec.load(connection)
        finally:
            connection.enable_load_extension(False)
    except Exception as exc:  # any failure leaves a usable connection without vectors
        log.warning("sqlite-vec not loaded (%s): store search uses the exact scan", exc)
        return False
    return True


def _open(module: ModuleType, database: str, **kwargs: Any) -> Any:
    """A connection of `module` with sqlite-vec loaded where possible (on aiosqlite's thread)."""
    connection = module.connect(database, **kwargs)
    _load_vec(connection)
    return connection


@lru_cache(maxsize=1)
def async_dbapi() -> Any:
    """SQLAlchemy's aiosqlite DBAPI adapter over sqlean (pass as `module=` to the engine)."""
    import aiosqlite
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

    sqlite = sqlite_module()

    def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> Any:
        return aiosqlite.Connection(partial(_open, sqlite, database, **kwargs), iter_chunk_size)

    # aiosqlite's module, with sqlean's exception classes and version, and sqlean connections.
    driver = SimpleNamespace(
        Connection=aiosqlite.Connection,
        connect=connect,
        __version__=aiosqlite.__version__,
        DatabaseError=sqlite.DatabaseError,
        Error=sqlite.Error,
        IntegrityError=sqlite.IntegrityError,
        NotSupportedError=sqlite.NotSupportedError,
        OperationalError=sqlite.OperationalError,
        ProgrammingError=sqlite.ProgrammingError,
        InterfaceError=sqlite.InterfaceError,
        sqlite_version=sqlite.sqlite_version,
        sqlite_version_info=sqlite.sqlite_version_info,
    )
    return AsyncAdapt_aiosqlite_dbapi(driver, sqlite)  # type: ignore[arg-type]


def sync_connect(database: str, **kwargs: Any) -> Any:
    """A sync connection of the same module, with sqlite-vec loaded where possible."""
    return _open(sqlite_module(), database, **kwargs)
