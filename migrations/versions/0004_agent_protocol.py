"""Agent Protocol: run options and execution state, thread values, persisted run events.

Draft by the Agent Protocol change (issue 3); the lead owns the final revision chain.

Revision ID: 0004_agent_protocol
Revises: 0003_store_items
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_agent_protocol"
down_revision: str | Sequence[str] | None = "0003_store_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the Agent Protocol columns and the run_events table."""
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("values", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("active_run_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("thread_id", existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column("metadata", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("input_items", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("stream_mode", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("webhook", sa.Text(), nullable=True))
        batch.add_column(sa.Column("on_completion", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("on_disconnect", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("multitask_strategy", sa.String(length=10), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("history_len", sa.Integer(), nullable=True))
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_index("ix_run_events_tenant_run", "run_events", ["tenant_id", "run_id"])


def downgrade() -> None:
    """Drop the run_events table and the Agent Protocol columns."""
    op.drop_index("ix_run_events_tenant_run", table_name="run_events")
    op.drop_table("run_events")
    with op.batch_alter_table("runs") as batch:
        for name in (
            "history_len",
            "updated_at",
            "started_at",
            "not_before",
            "cancel_requested",
            "multitask_strategy",
            "on_disconnect",
            "on_completion",
            "webhook",
            "stream_mode",
            "input_items",
            "config",
            "metadata",
        ):
            batch.drop_column(name)
        batch.alter_column("thread_id", existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("active_run_id")
        batch.drop_column("values")
