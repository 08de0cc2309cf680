"""scheduled jobs: tenant retention, daily usage, thread consolidations, crons and their fires

Revision ID: 0009_jobs
Revises: 0008_reviews
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_jobs"
down_revision: str | Sequence[str] | None = "0008_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tenant_retention",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("threads_days", sa.Integer(), nullable=True),
        sa.Column("runs_days", sa.Integer(), nullable=True),
        sa.Column("run_events_days", sa.Integer(), nullable=True),
        sa.Column("store_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "day", "agent"),
    )
    op.create_table(
        "thread_consolidations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("thread_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=False),
        sa.Column("memory_key", sa.String(length=256), nullable=True),
        sa.Column("consolidated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "thread_id"),
    )
    op.create_table(
        "crons",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("crons", schema=None) as batch_op:
        batch_op.create_index("ix_crons_next_run_at", ["next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_crons_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "cron_fires",
        sa.Column("cron_id", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("cron_id", "scheduled_for"),
    )
    with op.batch_alter_table("cron_fires", schema=None) as batch_op:
        batch_op.create_index("ix_cron_fires_tenant", ["tenant_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("cron_fires", schema=None) as batch_op:
        batch_op.drop_index("ix_cron_fires_tenant")
    op.drop_table("cron_fires")
    with op.batch_alter_table("crons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crons_tenant_id"))
        batch_op.drop_index("ix_crons_next_run_at")
    op.drop_table("crons")
    op.drop_table("thread_consolidations")
    op.drop_table("usage_daily")
    op.drop_table("tenant_retention")
