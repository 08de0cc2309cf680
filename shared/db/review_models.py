"""Human-in-the-loop tables: paused runs, reviews and their audit trail, approval policies, and
the billing demo's refunds (the side effect whose rows prove an approved tool ran exactly once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Index, Text, UniqueConstraint
from sqlalchemy.sql.expression import false as sa_false
from sqlmodel import Field, SQLModel

from shared.db.models import new_id, utcnow
from shared.db.types import UTCDateTime


class RunPause(SQLModel, table=True):
    """Why and where a run is paused: the SDK's RunState JSON (tool approvals) or the answer an
    output guardrail held back (output review). One row per run; replaced on each pause."""

    __tablename__ = "run_pauses"
    run_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    kind: str = Field(max_length=10)  # "tool" | "output"
    agent: str = Field(max_length=100)  # the agent that was answering when the run paused
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Review(SQLModel, table=True):
    """A decision a human owes a paused run: approve or reject one tool call or one answer."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_tenant_status_requested", "tenant_id", "status", "requested_at"),
        Index("ix_reviews_status_expires", "status", "expires_at"),
        Index("ix_reviews_run", "run_id"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    run_id: str = Field(max_length=64)
    thread_id: str | None = Field(default=None, max_length=64)
    agent: str = Field(max_length=100)
    kind: str = Field(max_length=10)  # "tool" | "output"
    tool: str | None = Field(default=None, max_length=200)
    call_id: str | None = Field(default=None, max_length=200)  # the interruption's id
    arguments: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default="pending", max_length=10)  # pending|approved|rejected|expired
    requested_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    decided_by: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    always_approve: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=sa_false())
    )


class ReviewAudit(SQLModel, table=True):
    """One entry of a review's audit trail: who did what, when, with which comment."""

    __tablename__ = "review_audit"
    __table_args__ = (Index("ix_review_audit_tenant_review", "tenant_id", "review_id"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    review_id: str = Field(max_length=64)
    action: str = Field(max_length=20)  # requested|approved|rejected|expired|refused
    actor: str = Field(max_length=200)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ToolPolicy(SQLModel, table=True):
    """A tenant's approval policy: the write/spend tools that run without a human approval
    (replaces the deployment default ASCENT_AUTO_APPROVE_TOOLS for that tenant)."""

    __tablename__ = "tool_policies"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    auto_approve: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ThreadToolApproval(SQLModel, table=True):
    """A reviewer's "always approve this tool in this thread" (later runs of it do not pause)."""

    __tablename__ = "thread_tool_approvals"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    thread_id: str = Field(primary_key=True, max_length=64)
    tool: str = Field(primary_key=True, max_length=200)
    review_id: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Refund(SQLModel, table=True):
    """A refund billing's `issue_refund` tool issued; unique per tool call (idempotency key):
    `call_id` is "<run id>/<tool call id>" (the bare tool call id for a run-less context)."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("tenant_id", "call_id", name="uq_refunds_tenant_call"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    user_id: str | None = Field(default=None, max_length=200)
    thread_id: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    call_id: str = Field(max_length=200)
    amount: float = Field(sa_column=Column(Float, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
