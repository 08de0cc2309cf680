"""Tenant-scoped thread ids; idempotency keys; tenant data policies

Threads are keyed by (id, tenant_id) instead of id alone, so two tenants may choose the same
thread id and neither can learn that the other uses it (issue 19). The tables that point at a
thread (runs, thread_grants, thread_checkpoints) point at (thread_id, tenant_id), and the
grants' and checkpoints' keys gain tenant_id. Run, cron and assistant ids need no change:
runs and crons get server-generated random ids (a client cannot choose one), and assistants
were keyed by (tenant_id, id) from the start (0013).

- SQLite: batch mode recreates the four tables (the migration connection does not enforce
  foreign keys, so the copy order does not matter).
- Postgres: the foreign keys are dropped, each primary key is swapped in one ALTER TABLE
  (DROP CONSTRAINT ..., ADD CONSTRAINT ... PRIMARY KEY), and composite foreign keys added.
- CockroachDB: the same statements; Cockroach changes a primary key only when the drop and
  the add are in one statement, which is why they are (ALTER PRIMARY KEY would keep the old
  key as a unique index, and with it global uniqueness). Not run in CI here.

Downgrade restores the global keys; it fails (unique violation) if two tenants meanwhile
created threads with the same id, which is the case it cannot represent.

Revision ID: 0015_tenant_scoped_ids
Revises: 0014_thread_checkpoints
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_tenant_scoped_ids"
down_revision: str | Sequence[str] | None = "0014_thread_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Names SQLite batch mode gives the unnamed constraints of the earlier revisions, so it can
# drop them; Postgres named them `<table>_<column>_fkey` and `<table>_pkey` itself.
NAMING = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Table: (old primary key, new primary key). The referencing tables' foreign keys follow.
KEYS = {
    "threads": (["id"], ["id", "tenant_id"]),
    "thread_grants": (["thread_id", "user_id"], ["thread_id", "user_id", "tenant_id"]),
    "thread_checkpoints": (
        ["thread_id", "checkpoint_id"],
        ["thread_id", "checkpoint_id", "tenant_id"],
    ),
}
REFERENCING = ("runs", "thread_grants", "thread_checkpoints")


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _swap_keys(scoped: bool) -> None:
    """Move the thread keys to tenant-scoped (`scoped`) or back to global."""
    new = 1 if scoped else 0
    if _is_sqlite():
        for table in REFERENCING:
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                name = f"fk_{table}_thread_id_threads"
                batch.drop_constraint(name, type_="foreignkey")
        for table, keys in KEYS.items():
            with op.batch_alter_table(table, naming_convention=NAMING, recreate="always") as b:
                b.drop_constraint(f"pk_{table}", type_="primary")
                b.create_primary_key(f"pk_{table}", keys[new])
        for table in REFERENCING:
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                local, remote = _fk_columns(scoped)
                batch.create_foreign_key(f"fk_{table}_thread_id_threads", "threads", local, remote)
        return
    for table in REFERENCING:
        op.drop_constraint(f"{table}_thread_id_fkey", table, type_="foreignkey")
    for table, keys in KEYS.items():
        columns = ", ".join(keys[new])
        # One statement: CockroachDB refuses a table without a primary key in between.
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY ({columns})"
        )
    for table in REFERENCING:
        local, remote = _fk_columns(scoped)
        op.create_foreign_key(f"{table}_thread_id_fkey", table, "threads", local, remote)


def _fk_columns(scoped: bool) -> tuple[list[str], list[str]]:
    if scoped:
        return ["thread_id", "tenant_id"], ["id", "tenant_id"]
    return ["thread_id"], ["id"]


def upgrade() -> None:
    """Apply this revision."""
    _swap_keys(scoped=True)
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    op.create_table(
        "tenant_data_policies",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=True),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("tenant_data_policies")
    op.drop_index("ix_idempotency_keys_expires", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    _swap_keys(scoped=False)
