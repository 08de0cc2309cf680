"""Event tables: the transactional outbox, webhook deliveries and per-tenant webhook secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db.models import new_id, utcnow


class OutboxEvent(SQLModel, table=True):
    """A domain event (a CloudEvent) written in the transaction of the change it describes.

    `seq` numbers the events of one `subject` (a run) from 1, so a drainer publishes them in
    order: only the lowest unpublished `seq` of a subject may be published. `published_at` is
    set only after the broker accepted the event; `claimed_by`/`claimed_until` are a drainer's
    compare-and-set claim, and `next_attempt_at` its retry backoff.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("subject", "seq", name="uq_outbox_events_subject_seq"),
        Index("ix_outbox_events_pending", "published_at", "subject", "seq"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    subject: str = Field(max_length=64)
    seq: int
    type: str = Field(max_length=100)
    envelope: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    published_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class WebhookDelivery(SQLModel, table=True):
    """One webhook POST owed for a terminal run event: its attempts and their outcome.

    `status`: `pending` (due at `next_attempt_at`), `delivered`, `failed` (attempts exhausted)
    or `refused` (the target is not allowed, e.g. a private address). Written in the same
    transaction as the run's terminal event, so a crash never loses a webhook.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    event_id: str = Field(unique=True, index=True, max_length=64)
    run_id: str = Field(index=True, max_length=64)
    url: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    next_attempt_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class TenantWebhookSecret(SQLModel, table=True):
    """The Standard Webhooks secret (`whsec_...`) a tenant's webhooks are signed with."""

    __tablename__ = "tenant_webhook_secrets"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    secret: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
