"""Idempotency keys: the first answer to a request sent with an `Idempotency-Key` header."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, LargeBinary
from sqlmodel import Field, SQLModel

from shared.db.models import utcnow
from shared.db.types import UTCDateTime


class IdempotencyKey(SQLModel, table=True):
    """One key of one tenant (`scope`: the tenant id, or `platform` for the admin API).

    `status` is `pending` while the first request runs, then `done` with its answer; the
    `fingerprint` (SHA-256 of method, path and body) tells a retry from a reuse of the key.
    shared/api/idempotency.py reads and writes it; purge_retention deletes expired rows.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)
    scope: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=10)
    response_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    response_headers: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # The first answer was a stream: a retry is told so (409), with the run's location.
    streamed: bool = Field(default=False)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    locked_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
