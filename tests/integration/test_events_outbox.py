"""The outbox is written in the transaction of the state change it describes."""

from __future__ import annotations

import uuid

from sqlmodel import col, select

from shared.db.engine import db_session
from shared.db.event_models import OutboxEvent
from shared.outbox.events import RUN_CREATED, RUN_STARTED, record_event
from tests.integration.events_support import record, tenant

__all__ = ["tenant"]


async def _events_of(subject: str) -> list[OutboxEvent]:
    async with db_session() as db:
        stmt = select(OutboxEvent).where(OutboxEvent.subject == subject)
        return list((await db.exec(stmt.order_by(col(OutboxEvent.seq)))).all())


async def test_a_rolled_back_change_leaves_no_event(tenant: str) -> None:
    """An event recorded in a transaction that rolls back is gone with the change."""
    subject = str(uuid.uuid4())
    async with db_session() as db:
        await record_event(
            session=db, tenant_id=tenant, type=RUN_CREATED, subject=subject, data={"n": 1}
        )
        await db.rollback()
    assert await _events_of(subject) == []


async def test_a_committed_change_keeps_its_events_as_cloudevents_in_sequence(tenant: str) -> None:
    """Committed events are CloudEvents 1.0 numbered 1, 2, ... per subject."""
    subject = str(uuid.uuid4())
    await record(tenant, subject, RUN_CREATED, status="pending")
    await record(tenant, subject, RUN_STARTED, status="running")
    rows = await _events_of(subject)
    assert [(r.seq, r.type) for r in rows] == [(1, RUN_CREATED), (2, RUN_STARTED)]
    envelope = rows[0].envelope
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == rows[0].id
    assert envelope["subject"] == subject
    assert envelope["sequence"] == "1"
    assert envelope["data"] == {"status": "pending"}
    assert {"source", "type", "time", "datacontenttype"} <= set(envelope)
