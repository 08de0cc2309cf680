"""The embedded queue's table: Storage-Queue semantics (visibility, dequeue count) in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from shared.db.models import new_id, utcnow
from shared.db.types import UTCDateTime


class QueueMessage(SQLModel, table=True):
    """One message of a named queue; invisible until `visible_at`, claimed by `pop_receipt`.

    Mirrors an Azure Storage Queue message: a receive sets `visible_at` ahead (the lease) and a
    fresh `pop_receipt`, and bumps `dequeue_count`; delete and update need the current receipt,
    so a consumer whose lease lapsed (another consumer received the message) cannot touch it.
    """

    __tablename__ = "queue_messages"
    __table_args__ = (Index("ix_queue_messages_queue_visible", "queue", "visible_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    queue: str = Field(sa_column=Column(String(63), nullable=False))
    # The message text exactly as sent (base64 when the sender encodes, like Storage Queues).
    content: str = Field(sa_column=Column(Text, nullable=False))
    dequeue_count: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    pop_receipt: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    inserted_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    visible_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
