"""usage_daily by assistant: the roll-up's key gains the assistant a run was bound to

Revision ID: 0017_usage_by_assistant
Revises: 0014_thread_checkpoints
Create Date: 2026-12-05 11:45:00

Existing rows keep their counts with `assistant_id` '' (no assistant). The key becomes
(tenant_id, day, agent, assistant_id). SQLite rebuilds the table and copies its rows; Postgres and
CockroachDB add the column and swap the primary key in place. Downgrade folds the assistants of
a (tenant, day, agent) back into one row by summing them, so no counted token is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_usage_by_assistant"
down_revision: str | Sequence[str] | None = "0014_thread_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_COLUMNS = (
    "tenant_id, day, agent, model, runs, requests, input_tokens, output_tokens, total_tokens, "
    "cost_usd, updated_at"
)


def _table(name: str, *, with_assistant: bool) -> None:
    key = ["tenant_id", "day", "agent", *(["assistant_id"] if with_assistant else [])]
    extra = (
        [sa.Column("assistant_id", sa.String(length=64), nullable=False, server_default="")]
        if with_assistant
        else []
    )
    op.create_table(
        name,
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        *extra,
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint(*key),
    )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Apply this revision."""
    if _sqlite():
        # SQLite cannot change a primary key in place: rebuild the table and copy the rows.
        _table("usage_daily_new", with_assistant=True)
        op.execute(f"INSERT INTO usage_daily_new ({_COLUMNS}) SELECT {_COLUMNS} FROM usage_daily")  # noqa: S608
        op.drop_table("usage_daily")
        op.rename_table("usage_daily_new", "usage_daily")
        return
    op.add_column(
        "usage_daily",
        sa.Column("assistant_id", sa.String(length=64), nullable=False, server_default=""),
    )
    op.drop_constraint("usage_daily_pkey", "usage_daily", type_="primary")
    op.create_primary_key(
        "usage_daily_pkey", "usage_daily", ["tenant_id", "day", "agent", "assistant_id"]
    )


def downgrade() -> None:
    """Revert this revision: one row per (tenant, day, agent), the assistants' counts summed."""
    folded = (
        "SELECT tenant_id, day, agent, MAX(model), SUM(runs), SUM(requests), SUM(input_tokens), "
        "SUM(output_tokens), SUM(total_tokens), SUM(cost_usd), MAX(updated_at) "
        "FROM usage_daily GROUP BY tenant_id, day, agent"
    )
    _table("usage_daily_old", with_assistant=False)
    op.execute(f"INSERT INTO usage_daily_old ({_COLUMNS}) {folded}")
    op.drop_table("usage_daily")
    op.rename_table("usage_daily_old", "usage_daily")
    if not _sqlite():
        # The rebuilt table's key is named after its first name; restore the original name.
        op.execute(
            "ALTER TABLE usage_daily RENAME CONSTRAINT usage_daily_old_pkey TO usage_daily_pkey"
        )
