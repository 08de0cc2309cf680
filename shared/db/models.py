"""SQLModel tables; every row carries its tenant and every query filters on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.sql.expression import false as sa_false
from sqlmodel import Field, SQLModel

from shared.db.types import UTCDateTime


def utcnow() -> datetime:
    """Return the current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def new_id() -> str:
    """Return a new random identifier (UUID4, as text so every database stores it alike)."""
    return str(uuid.uuid4())


class Tenant(SQLModel, table=True):
    """An isolated customer of the deployment; owns keys, threads and runs."""

    __tablename__ = "tenants"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ApiKey(SQLModel, table=True):
    """A bearer API key: only its SHA-256 is stored, found by its public prefix."""

    __tablename__ = "api_keys"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    prefix: str = Field(unique=True, index=True, max_length=32)
    key_hash: str = Field(max_length=64)
    name: str = Field(default="default", max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Thread(SQLModel, table=True):
    """A conversation; its history lives in the Agents SDK session keyed by tenant and id.

    The key is (id, tenant_id): a client may choose a thread's id, and two tenants choosing the
    same one get two threads, so creating one never tells a tenant that another uses the id.
    """

    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_tenant_updated", "tenant_id", "updated_at"),
        Index("ix_threads_tenant_owner", "tenant_id", "owner_id"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, index=True, max_length=64)
    status: str = Field(default="idle", max_length=20)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    # Agent Protocol: free-form state values (PATCH /threads) and the run holding the thread.
    values_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("values", JSON, nullable=True)
    )
    active_run_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The user who created the thread (a bearer-token principal); None for tenant-wide
    # principals such as API keys. Users see their own threads and those granted to them.
    owner_id: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class ThreadGrant(SQLModel, table=True):
    """Access to a thread given to another user of the same tenant by its owner."""

    __tablename__ = "thread_grants"
    __table_args__ = (
        Index("ix_thread_grants_tenant_user", "tenant_id", "user_id"),
        ForeignKeyConstraint(["thread_id", "tenant_id"], ["threads.id", "threads.tenant_id"]),
    )
    thread_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=200)
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    granted_by: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ThreadCheckpoint(SQLModel, table=True):
    """A thread state not produced by a run: `update_state` writes one, and `copy` one for the
    copied state (a finished run's state is the run itself: checkpoint_id = run id)."""

    __tablename__ = "thread_checkpoints"
    __table_args__ = (
        Index("ix_thread_checkpoints_thread", "tenant_id", "thread_id", "created_at"),
        ForeignKeyConstraint(["thread_id", "tenant_id"], ["threads.id", "threads.tenant_id"]),
    )
    thread_id: str = Field(primary_key=True, max_length=64)
    checkpoint_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    parent_checkpoint_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
    # Conversation items the thread held at this checkpoint (its messages are a prefix).
    history_len: int = Field(sa_column=Column(Integer, nullable=False))
    values_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("values", JSON, nullable=True)
    )
    metadata_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("metadata", JSON, nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Run(SQLModel, table=True):
    """One invocation of an agent on a thread: status, input, output, usage and timing."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_thread", "tenant_id", "thread_id"),
        # The sweeper's and the poll fallback's scans: running runs by lease, cancels.
        Index("ix_runs_status_lease", "status", "lease_expires_at"),
        ForeignKeyConstraint(["thread_id", "tenant_id"], ["threads.id", "threads.tenant_id"]),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    # NULL once a stateless run's thread is deleted (on_completion="delete").
    thread_id: str | None = Field(default=None, max_length=64)
    agent: str = Field(max_length=100)
    status: str = Field(default="pending", max_length=20)
    input: str = Field(sa_column=Column(Text, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_agent: str | None = Field(default=None, max_length=100)
    # Who asked (JWT user, else API key id): scopes the run's long-term memory.
    user_id: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # Agent Protocol (RunCreate fields and execution state).
    metadata_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("metadata", JSON, nullable=True)
    )
    config: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    input_items: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    stream_mode: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    webhook: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    on_completion: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    on_disconnect: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    multitask_strategy: str | None = Field(
        default=None, sa_column=Column(String(10), nullable=True)
    )
    cancel_requested: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=sa_false()),
    )
    not_before: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    started_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # How many conversation items the thread held when the run finished (its history entry).
    history_len: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # Execution lease (shared/runs/engine.py): the worker executing a `running` run renews it while
    # it works; once it lapses (the worker died) a redelivery or the sweeper takes the run over.
    # On a `pending` run: the claim of the receiver waiting on it (renewed the same way), or,
    # with no owner, its dispatch deadline (docs/reliability.md). No schema change: same columns.
    lease_owner: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # Conversation items the thread held when the run first started: a takeover trims back to it.
    history_start: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # Which API created the run (shared/runs/engine.py ENTRY_POINTS): `agents` (the simple
    # route), `runs` (Agent Protocol background), `wait`, `stream`, `openai`, `responses` (the
    # Responses API, shared/api/responses.py: the response id is `resp_<id hex>`), `cron`. A
    # run executed inside its request (every one but `runs`, `cron` and background responses)
    # whose executor died with its client attached is ended, not re-executed
    # (shared/runs/service.py).
    entry_point: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))


class RunEvent(SQLModel, table=True):
    """One persisted stream event of a run; `seq` is its SSE id, so any instance can replay."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_tenant_run", "tenant_id", "run_id"),)
    run_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    event: str = Field(max_length=40)
    data: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
