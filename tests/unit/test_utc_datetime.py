"""The database layer's one datetime type: aware UTC in, aware UTC out, on SQLite too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text

from shared.db.types import UTCDateTime, as_utc

STAMPS = Table(
    "stamps",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
)


def test_sqlite_hands_back_aware_utc_for_every_input() -> None:
    """A naive (taken as UTC), a UTC and a +02:00 moment all read back as aware UTC."""
    engine = create_engine("sqlite://")
    STAMPS.metadata.create_all(engine)
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    given = [
        moment.replace(tzinfo=None),
        moment,
        moment.astimezone(timezone(timedelta(hours=2))),
    ]
    with engine.begin() as conn:
        conn.execute(STAMPS.insert(), [{"id": i, "at": at} for i, at in enumerate(given)])
        read = [row.at for row in conn.execute(select(STAMPS).order_by(STAMPS.c.id))]
        stored = conn.execute(text("SELECT at FROM stamps WHERE id = 2")).scalar_one()
    assert read == [moment] * 3
    assert all(at.tzinfo is UTC for at in read)
    assert str(stored).startswith("2026-03-01 12:00:00")  # kept as UTC, not as 14:00


def test_as_utc_converts_and_assumes() -> None:
    """as_utc converts an aware moment to UTC and takes a naive one to be UTC."""
    naive = datetime(2026, 3, 1, 12, 0)
    paris = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_utc(naive) == as_utc(paris) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert as_utc(paris).tzinfo is UTC
