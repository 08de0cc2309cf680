"""store_items.embedding_vec: pgvector copy of the embeddings, where the extension exists

Revision ID: 0011_store_vectors
Revises: 0010_thread_owners
Create Date: 2026-11-22

On PostgreSQL with the `vector` extension available (pgvector; on Azure Database for
PostgreSQL once `azure.extensions` allow-lists VECTOR), this adds a stored generated column
`embedding_vec vector` computed from `embedding` by the SQL function `ascent_store_vector`, so
semantic search can rank in the database (shared/memory/vector_search.py). Everywhere else (SQLite,
Postgres without the extension or without the privilege to create it, CockroachDB) it changes
nothing and search keeps ranking in Python. The column is not in the SQLModel metadata;
`shared.db.migrate.include_object` keeps it out of autogenerate comparisons.

`shared.db.migrate.migrate()` calls `add_vector_column()` again after every upgrade, so a
database whose extension becomes available later gets the column on the next migrate run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

revision: str = "0011_store_vectors"
down_revision: str | Sequence[str] | None = "0010_thread_owners"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# The inverse of shared.memory.embeddings.pack in SQL: base64 of a little-endian float32 scale, then
# one int8 per dimension and 0-2 zero bytes of padding. The result keeps the padding (zeros
# add nothing to an inner product), so it depends on the text alone; vector_dims() = packed
# bytes - 4, which is how a search recognises vectors of its own width. Each value is
# int8 * scale rounded to float32, bit for bit what shared.memory.embeddings.unpack gives.
# `SET search_path FROM CURRENT` pins the schema of the `vector` type for every caller,
# including pg_dump restores (which run with an empty search_path).
_FUNCTION = """
CREATE OR REPLACE FUNCTION ascent_store_vector(packed text) RETURNS vector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
  raw bytea := decode(packed, 'base64');
  bits bigint;
  exponent int;
  scale float8;
  width int := length(raw) - 4;
  vals real[];
  b int;
BEGIN
  bits := get_byte(raw, 0)::bigint + (get_byte(raw, 1)::bigint << 8)
        + (get_byte(raw, 2)::bigint << 16) + (get_byte(raw, 3)::bigint << 24);
  exponent := ((bits >> 23) & 255)::int;
  scale := CASE WHEN exponent = 0 THEN (bits & 8388607) * (2::float8 ^ -149)
                ELSE ((bits & 8388607) + 8388608) * (2::float8 ^ (exponent - 150)) END;
  IF (bits >> 31) = 1 THEN
    scale := -scale;
  END IF;
  vals := array_fill(0::real, ARRAY[width]);
  FOR i IN 1..width LOOP
    b := get_byte(raw, i + 3);
    IF b > 127 THEN
      b := b - 256;
    END IF;
    vals[i] := b * scale;
  END LOOP;
  RETURN vals::vector;
END
$$
"""
_COLUMN = (
    "ALTER TABLE store_items ADD COLUMN IF NOT EXISTS embedding_vec vector"
    " GENERATED ALWAYS AS (ascent_store_vector(embedding)) STORED"
)


def _has_column(connection: Connection) -> bool:
    found = connection.execute(
        text(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'store_items'"
            " AND column_name = 'embedding_vec'"
        )
    ).first()
    return found is not None


def add_vector_column(connection: Connection) -> bool:
    """Add store_items.embedding_vec where pgvector can be had; idempotent, never raises.

    Runs in a SAVEPOINT: a failed CREATE EXTENSION (the extension is not allow-listed, or the
    role may not create it) rolls back to it and leaves the caller's transaction usable.
    """
    if connection.dialect.name != "postgresql":
        return False
    try:
        with connection.begin_nested():
            if _has_column(connection):
                return True
            available = connection.execute(
                text("SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
            if available is None:
                log.info("pgvector is not available: store search ranks in Python")
                return False
            if available[0] is None:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            connection.execute(text(_FUNCTION))
            connection.execute(text(_COLUMN))
    except DBAPIError as exc:
        # Not allow-listed, no privilege, CockroachDB's partial catalog: search stays in Python.
        log.warning("store_items.embedding_vec not added (%s)", str(exc.orig).strip())
        return False
    log.info("store_items.embedding_vec added: store search ranks in the database")
    return True


def upgrade() -> None:
    """Add the pgvector column where the extension exists; elsewhere do nothing."""
    if context.is_offline_mode():
        return  # whether pgvector exists is only known online; the migrate step retries it
    add_vector_column(op.get_bind())


def downgrade() -> None:
    """Drop the column and its function where they exist (the extension stays installed)."""
    if context.is_offline_mode():
        return
    connection = op.get_bind()
    if connection.dialect.name != "postgresql" or not _has_column(connection):
        return
    op.execute("ALTER TABLE store_items DROP COLUMN embedding_vec")
    op.execute("DROP FUNCTION IF EXISTS ascent_store_vector(text)")
