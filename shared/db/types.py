"""The one UTC datetime type of the database layer.

Every timestamp column is a `UTCDateTime`: written as UTC (a naive value is taken to be UTC
already, an aware one is converted) and read back timezone-aware UTC on every database, SQLite
included (which stores no zone and hands timestamps back naive). Code reading a row never needs
a workaround; `as_utc` is for the values that do not come through a column: a caller's `now`,
a request body's timestamp, a parsed ISO string, a raw `text()` query's result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def as_utc(moment: datetime) -> datetime:
    """The moment as timezone-aware UTC (a naive moment is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back timezone-aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC."""
        return as_utc(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back aware UTC (SQLite returns naive datetimes, or text from raw SQL)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return as_utc(value)
