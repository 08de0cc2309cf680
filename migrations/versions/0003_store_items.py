"""Long-term memory: the Agent Protocol store's items (shared/db/memory_models.py).

Revision ID: 0003_store_items
Revises: 0002_tenant_identities
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_store_items"
down_revision: str | Sequence[str] | None = "0002_tenant_identities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create store_items and its indexes."""
    op.create_table(
        "store_items",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.Text(), nullable=True),
        sa.Column("embedding_model", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "namespace", "key"),
    )
    op.create_index("ix_store_items_expires_at", "store_items", ["expires_at"], unique=False)
    op.create_index(
        "ix_store_items_tenant_updated", "store_items", ["tenant_id", "updated_at"], unique=False
    )


def downgrade() -> None:
    """Drop store_items."""
    op.drop_index("ix_store_items_tenant_updated", table_name="store_items")
    op.drop_index("ix_store_items_expires_at", table_name="store_items")
    op.drop_table("store_items")
