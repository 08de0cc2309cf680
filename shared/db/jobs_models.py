"""Tables of the scheduled jobs (issue 7): retention, usage roll-ups, memory consolidation, crons.

Every row carries its tenant. Claims are row updates with a compare-and-set (DESIGN.md,
decision 4): no locks, so two job replicas at once and a replica killed halfway are safe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from shared.db.models import new_id, utcnow


class TenantRetention(SQLModel, table=True):
    """A tenant's retention in days per kind of record; NULL = the ASCENT_RETENTION_DAYS_* default.

    0 keeps that kind forever. Store items are also deleted when their own TTL expires.
    """

    __tablename__ = "tenant_retention"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    threads_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    runs_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    run_events_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    store_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class UsageDaily(SQLModel, table=True):
    """Tokens and estimated cost of a tenant's runs of one agent on one UTC day (`YYYY-MM-DD`).

    Recomputed from `runs` by the `rollup_usage` job (an idempotent upsert), never incremented.
    """

    __tablename__ = "usage_daily"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    day: str = Field(primary_key=True, max_length=10)
    agent: str = Field(primary_key=True, max_length=100)
    # The assistant the runs were bound to ('' for runs of a catalog agent by name).
    assistant_id: str = Field(
        default="",
        sa_column=Column(String(64), primary_key=True, nullable=False, server_default=""),
    )
    model: str = Field(max_length=100)
    runs: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ThreadConsolidation(SQLModel, table=True):
    """A thread's summary in its user's long-term memory: claimed (`working`) then `done`.

    `thread_updated_at` is the version of the thread that was (or is being) summarized: a
    thread that changes afterwards becomes eligible again. A `working` claim whose
    `lease_until` passed belongs to a crashed replica and may be taken over.
    """

    __tablename__ = "thread_consolidations"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    thread_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="working", max_length=10)
    thread_updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    lease_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    claimed_by: str = Field(max_length=64)
    memory_key: str | None = Field(default=None, max_length=256)
    consolidated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Cron(SQLModel, table=True):
    """A user-defined scheduled run (LangGraph's crons): an agent, an input and a UTC cron.

    `next_run_at` is the next occurrence still to fire (NULL once `end_time` passed or the
    cron's thread was deleted); the dispatcher advances it with a compare-and-set.
    """

    __tablename__ = "crons"
    __table_args__ = (Index("ix_crons_next_run_at", "next_run_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    user_id: str | None = Field(default=None, max_length=200)
    agent: str = Field(max_length=100)
    thread_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    schedule: str = Field(max_length=120)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    next_run_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    end_time: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class CronFire(SQLModel, table=True):
    """One firing of a cron: the unique key (cron_id, scheduled_for) makes it happen once.

    Inserted in the same transaction as the claim and the pending run; `enqueued_at` is set
    once the run was handed to `shared.runs.dispatch.enqueue_run` (NULL after a crash in between,
    so the next dispatcher pass enqueues it).
    """

    __tablename__ = "cron_fires"
    __table_args__ = (Index("ix_cron_fires_tenant", "tenant_id"),)
    cron_id: str = Field(primary_key=True, max_length=64)
    scheduled_for: datetime = Field(
        sa_column=Column(DateTime(timezone=True), primary_key=True, nullable=False)
    )
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    run_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    enqueued_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
