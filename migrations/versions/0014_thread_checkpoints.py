"""thread_checkpoints: thread states written by update_state and copy

Revision ID: 0014_thread_checkpoints
Revises: 0013_assistants
Create Date: 2026-12-05 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_thread_checkpoints"
down_revision: str | Sequence[str] | None = "0013_assistants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "thread_checkpoints",
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("parent_checkpoint_id", sa.String(length=64), nullable=True),
        sa.Column("history_len", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["thread_id"], ["threads.id"]),
        sa.PrimaryKeyConstraint("thread_id", "checkpoint_id"),
    )
    op.create_index(
        "ix_thread_checkpoints_thread",
        "thread_checkpoints",
        ["tenant_id", "thread_id", "created_at"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_thread_checkpoints_thread", table_name="thread_checkpoints")
    op.drop_table("thread_checkpoints")
