"""thread owners and grants (users see their own threads), per-tenant limits

Revision ID: 0010_thread_owners
Revises: 0009_jobs
Create Date: 2026-11-21 16:33:21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_thread_owners"
down_revision: str | Sequence[str] | None = "0009_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("key_requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("concurrent_runs", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "thread_grants",
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
        ),
        sa.PrimaryKeyConstraint("thread_id", "user_id"),
    )
    with op.batch_alter_table("thread_grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_thread_grants_tenant_user", ["tenant_id", "user_id"], unique=False
        )
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_threads_tenant_owner", ["tenant_id", "owner_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_index("ix_threads_tenant_owner")
        batch_op.drop_column("owner_id")
    with op.batch_alter_table("thread_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_grants_tenant_user")

    op.drop_table("thread_grants")
    op.drop_table("tenant_limits")
