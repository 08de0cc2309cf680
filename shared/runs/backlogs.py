"""The backlog gauges: what waits, read from the database when the metric reader collects.

- `ascent.queue.depth`, `ascent.queue.oldest_age`: messages on the `agent-runs` queue of the
  embedded (SQL) backend. With Azure Storage queues, Azure Monitor's own Storage metrics
  (QueueMessageCount) show the depth; reading it here would need a storage call per export.
- `ascent.reviews.pending`, `ascent.reviews.oldest_wait`: reviews waiting for a human.
- `ascent.outbox.backlog`: CloudEvents not yet published plus webhook deliveries pending.

The reader runs in the metric reader's thread (every ASCENT_OTEL_METRIC_EXPORT_SECONDS), on a
one-connection sync engine of its own, so it never touches the event loop or the hot path's
connections. Counts are across tenants (the platform's view).
"""

from __future__ import annotations

import threading
from typing import Any, Final

from sqlalchemy import Engine, Table, create_engine, func, select

from shared.core.settings import get_settings
from shared.db.direct import sync_url
from shared.db.event_models import OutboxEvent, WebhookDelivery
from shared.db.models import utcnow
from shared.db.queue_models import QueueMessage
from shared.db.review_models import Review
from shared.db.sqlite_driver import sqlite_module
from shared.db.types import as_utc
from shared.platform import observability
from shared.platform.queues import RUNS_QUEUE

REVIEWS: Final[Table] = Review.__table__  # type: ignore[attr-defined]
OUTBOX: Final[Table] = OutboxEvent.__table__  # type: ignore[attr-defined]
HOOKS: Final[Table] = WebhookDelivery.__table__  # type: ignore[attr-defined]
QUEUE: Final[Table] = QueueMessage.__table__  # type: ignore[attr-defined]

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def _engine() -> Engine:
    url = sync_url(get_settings().sqlalchemy_url)
    with _LOCK:
        found = _ENGINES.get(url)
        if found is None:
            options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_pre_ping": True}
            if url.startswith("sqlite"):
                options["connect_args"] = {"check_same_thread": False}
                options["module"] = sqlite_module()  # one SQLite library per process
            found = _ENGINES[url] = create_engine(url, **options)
        return found


def read_backlogs() -> dict[str, float]:
    """The current backlog readings, by metric name."""
    now = utcnow()
    out: dict[str, float] = {}
    with _engine().connect() as conn:
        pending, oldest = conn.execute(
            select(func.count(), func.min(REVIEWS.c.requested_at)).where(
                REVIEWS.c.status == "pending"
            )
        ).one()
        out["ascent.reviews.pending"] = float(pending)
        out["ascent.reviews.oldest_wait"] = (
            max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
        )
        events = conn.execute(
            select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
        ).scalar()
        hooks = conn.execute(
            select(func.count()).select_from(HOOKS).where(HOOKS.c.status == "pending")
        ).scalar()
        out["ascent.outbox.backlog"] = float((events or 0) + (hooks or 0))
        if get_settings().queue_backend == "embedded":
            depth, first = conn.execute(
                select(func.count(), func.min(QUEUE.c.inserted_at)).where(
                    QUEUE.c.queue == RUNS_QUEUE
                )
            ).one()
            out["ascent.queue.depth"] = float(depth)
            out["ascent.queue.oldest_age"] = (
                max(0.0, (now - as_utc(first)).total_seconds()) if first is not None else 0.0
            )
    return out


def watch_backlogs() -> None:
    """Serve the backlog gauges from this process (idempotent; reads only when collected)."""
    observability.register_backlog("database", read_backlogs)
