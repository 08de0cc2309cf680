"""the one run engine: runs.entry_point, and an index for lease and cancel scans

Revision ID: 0012_run_engine
Revises: 0011_store_vectors
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_run_engine"
down_revision: str | Sequence[str] | None = "0011_store_vectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("entry_point", sa.String(length=20), nullable=True))
    op.create_index("ix_runs_status_lease", "runs", ["status", "lease_expires_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_runs_status_lease", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("entry_point")
