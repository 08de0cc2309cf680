"""tenant identities (issue 9: Entra ID / OIDC bearer tokens per tenant)

Revision ID: 0002_tenant_identities
Revises: 0001_baseline
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_tenant_identities"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tenant_identities",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("audience", sa.String(length=500), nullable=False),
        sa.Column("jwks_url", sa.String(length=1000), nullable=False),
        sa.Column("entra_tenant_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    with op.batch_alter_table("tenant_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_identities_issuer"), ["issuer"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tenant_identities_entra_tenant_id"), ["entra_tenant_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("tenant_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_identities_entra_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_tenant_identities_issuer"))
    op.drop_table("tenant_identities")
