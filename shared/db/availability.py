"""Telling a lost or refused database connection apart from a bug (503, not 500)."""

from __future__ import annotations

# Seconds a client is told to wait when the database dropped its connection: the pool
# reconnects (pre-ping) on the next checkout, so a retry this much later normally succeeds.
RETRY_AFTER_SECONDS = 2
_DRIVER_ERRORS = ("OperationalError", "InterfaceError", "AdminShutdown")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a lost or refused database connection.

    Covers a killed backend, a restart or failover (psycopg's OperationalError, wrapped by
    SQLAlchemy), and the PendingRollbackError a connection invalidated mid-transaction
    leaves; SQLite's "database is locked" counts too (busy: retry later), and so does a pool
    with no connection free within its timeout (saturated: retry later, not a bug).
    """
    # Function-local to keep cold start fast: SQLAlchemy's exceptions load with the first
    # failure, not at import.
    from sqlalchemy.exc import (
        DBAPIError,
        InterfaceError,
        OperationalError,
        PendingRollbackError,
    )
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (OperationalError, InterfaceError, PendingRollbackError, PoolTimeout)):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        kind = type(seen)
        if kind.__module__.startswith("psycopg") and kind.__name__ in _DRIVER_ERRORS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
