"""store_items.embedding: native vectors (pgvector HNSW, sqlite-vec), no more packed text

Revision ID: 0016_native_vectors
Revises: 0015_tenant_scoped_ids
Create Date: 2026-12-05

Before: `embedding` was base64 text of a float32 scale and int8 values, and on Postgres with
pgvector a generated column `embedding_vec` decoded it through the SQL function
`ascent_store_vector` (0011). After, `embedding` holds the vector itself:

- PostgreSQL with the `vector` extension available: `vector(EMBEDDINGS_DIMENSIONS)` (the
  dimension is fixed per deployment by that setting, read when this runs) with an HNSW index
  (`vector_cosine_ops`; pgvector indexes at most 2,000 dimensions, so above that no index is
  built and search scans). `embedding_vec` and `ascent_store_vector` are dropped.
- SQLite, PostgreSQL without pgvector, CockroachDB: `BLOB`/`bytea`/`BYTES` of float32
  little-endian values, the format sqlite-vec reads natively. CockroachDB is treated as a
  Postgres without pgvector: bytes, and the exact scan.

Existing rows are converted, not re-embedded: the packed int8 values are dequantised (the
precision they had). A stored vector whose width is not the deployment's dimension cannot go
into `vector(n)` and becomes NULL (unsearchable until put again; another model's vectors were
never comparable anyway). Downgrade converts back to the packed text (int8, as 0011 wrote it)
and, on pgvector, restores 0011's generated column.

`shared.db.migrate.migrate()` calls `ensure_native_vectors()` after every upgrade: a Postgres
whose extension becomes available later has its bytes converted to `vector(n)` then.
"""

from __future__ import annotations

import base64
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from alembic import context, op
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

revision: str = "0016_native_vectors"
down_revision: str | Sequence[str] | None = "0015_tenant_scoped_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

BATCH = 1_000
HNSW_MAX_DIMENSIONS = 2_000
INDEX = "ix_store_items_embedding_hnsw"
_PK = ("tenant_id", "namespace", "key")


# --- the formats -----------------------------------------------------------------------------


def _dimensions() -> int:
    """The deployment's vector dimension (EMBEDDINGS_DIMENSIONS)."""
    from shared.core.settings import get_settings

    return get_settings().embeddings_dimensions


def _unpack(packed: str, model: str | None) -> list[float]:
    """0011's packed text back to floats (its padding dropped: the model id names the width)."""
    raw = base64.b64decode(packed)
    (inverse,) = struct.unpack_from("<f", raw)
    values = [v * inverse for v in memoryview(raw)[4:].cast("b")]
    suffix = (model or "").rsplit(":", 1)[-1]
    # The width: the model id's, else the deployment's where the padding allows it.
    for width in (int(suffix) if suffix.isdigit() else -1, _dimensions()):
        if 0 < width <= len(values) and -(-(4 + width) // 3) * 3 == len(raw):
            return values[:width]
    return values


def _pack(vector: Sequence[float]) -> str:
    """Floats as 0011's packed text: float32 scale, int8 values, padded to a multiple of 3."""
    peak = max((abs(x) for x in vector), default=0.0)
    scale = 127.0 / peak if peak else 1.0
    raw = bytearray(struct.pack("<f", 1.0 / scale))
    raw += bytes(round(x * scale) & 0xFF for x in vector)
    raw += bytes(-(-(4 + len(vector)) // 3) * 3 - len(raw))
    return base64.b64encode(bytes(raw)).decode("ascii")


def _to_bytes(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def _from_bytes(raw: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _to_vector_text(vector: Sequence[float]) -> str:
    return "[" + ",".join(map(repr, vector)) + "]"


def _from_vector_text(value: str) -> list[float]:
    return [float(x) for x in value.strip("[]").split(",")] if value.strip("[]") else []


# --- the catalog -----------------------------------------------------------------------------


def _column_type(connection: Connection, name: str = "embedding") -> str | None:
    """The Postgres type name of a store_items column, or None where it does not exist."""
    found = connection.execute(
        text(
            "SELECT t.typname FROM pg_catalog.pg_attribute AS a"
            " JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid"
            " WHERE a.attrelid = to_regclass('store_items') AND a.attname = :name"
            " AND NOT a.attisdropped"
        ),
        {"name": name},
    ).first()
    return None if found is None else str(found[0])


def _pgvector_available(connection: Connection) -> bool:
    """Create the extension where it is available and allowed; never raises (SAVEPOINT)."""
    try:
        with connection.begin_nested():
            found = connection.execute(
                text("SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
            if found is None:
                log.info("pgvector is not available: store search uses the exact scan")
                return False
            if found[0] is None:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except DBAPIError as exc:
        # Not allow-listed, no privilege, CockroachDB's partial catalog: the exact scan.
        log.warning("pgvector not enabled (%s): store search uses the exact scan", exc.orig)
        return False
    return True


# --- the conversion --------------------------------------------------------------------------


def _rows(connection: Connection, select_value: str) -> Iterator[list[Any]]:
    """Batches of (tenant_id, namespace, key, value, model) with an embedding, in key order."""
    last: tuple[str, str, str] | None = None
    while True:
        after = "" if last is None else " AND (tenant_id, namespace, key) > (:t, :n, :k)"
        params = {} if last is None else dict(zip(("t", "n", "k"), last, strict=True))
        batch = connection.execute(
            text(
                f"SELECT tenant_id, namespace, key, {select_value}, embedding_model"  # noqa: S608
                f" FROM store_items WHERE embedding IS NOT NULL{after}"
                f" ORDER BY tenant_id, namespace, key LIMIT {BATCH}"
            ),
            params,
        ).all()
        if not batch:
            return
        yield [tuple(row) for row in batch]
        last = (batch[-1][0], batch[-1][1], batch[-1][2])


def _rewrite(
    connection: Connection,
    *,
    select_value: str,
    new_type: str,
    bind: str,
    convert: Callable[[Any, str | None], Any],
) -> None:
    """Replace `embedding` by a column of `new_type`, each value converted in Python.

    A new column, filled in key-ordered batches, then swapped in: the old values stay readable
    until the swap and the whole thing is one transaction (on SQLite the new column is added
    and the old one dropped with ALTER TABLE, which SQLite supports since 3.35).
    """
    connection.execute(text(f"ALTER TABLE store_items ADD COLUMN embedding_new {new_type}"))
    update = text(
        f"UPDATE store_items SET embedding_new = {bind}"  # noqa: S608 (this module's SQL)
        " WHERE tenant_id = :t AND namespace = :n AND key = :k"
    )
    for batch in _rows(connection, select_value):
        params = [
            {"t": t, "n": n, "k": k, "v": convert(value, model)} for t, n, k, value, model in batch
        ]
        connection.execute(update, params)
    connection.execute(text("ALTER TABLE store_items DROP COLUMN embedding"))
    connection.execute(text("ALTER TABLE store_items RENAME COLUMN embedding_new TO embedding"))


def _fits(dimensions: int) -> Callable[[list[float]], list[float] | None]:
    def check(vector: list[float]) -> list[float] | None:
        return vector if len(vector) == dimensions else None

    return check


def _to_native(connection: Connection, source: str) -> None:
    """`embedding` (packed `text` or `bytea`) to `vector(n)` with its HNSW index."""
    dimensions = _dimensions()
    fits = _fits(dimensions)

    def convert(value: Any, model: str | None) -> str | None:
        floats = _unpack(value, model) if source == "text" else _from_bytes(bytes(value))
        vector = fits(floats)
        return None if vector is None else _to_vector_text(vector)

    _rewrite(
        connection,
        select_value="embedding",
        new_type=f"vector({dimensions})",
        bind=f"CAST(:v AS vector({dimensions}))",
        convert=convert,
    )
    if dimensions <= HNSW_MAX_DIMENSIONS:
        connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {INDEX} ON store_items"
                " USING hnsw (embedding vector_cosine_ops)"
            )
        )
    else:
        log.warning("pgvector indexes at most %d dimensions: no HNSW index", HNSW_MAX_DIMENSIONS)


def _bytes_type(connection: Connection) -> str:
    return "BLOB" if connection.dialect.name == "sqlite" else "bytea"


def ensure_native_vectors(connection: Connection) -> bool:
    """On Postgres, turn a `bytea` embedding into `vector(n)` once pgvector can be had.

    Idempotent and never fails the caller (a refused CREATE EXTENSION is logged): True where
    the column is (now) a native vector.
    """
    if connection.dialect.name != "postgresql":
        return False
    try:
        kind = _column_type(connection)
    except DBAPIError:  # CockroachDB without these catalogs
        return False
    if kind == "vector":
        return True
    if kind != "bytea" or not _pgvector_available(connection):
        return False
    _to_native(connection, "bytea")
    log.info("store_items.embedding is now a pgvector column with an HNSW index")
    return True


def upgrade() -> None:
    """Drop 0011's generated column and function; convert the packed text to vectors."""
    if context.is_offline_mode():
        raise RuntimeError("0016 converts stored vectors: run it online")
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute("ALTER TABLE store_items DROP COLUMN IF EXISTS embedding_vec")
        op.execute("DROP FUNCTION IF EXISTS ascent_store_vector(text)")
        if _pgvector_available(connection):
            _to_native(connection, "text")
            return

    def convert(value: Any, model: str | None) -> bytes:
        return _to_bytes(_unpack(value, model))

    _rewrite(
        connection,
        select_value="embedding",
        new_type=_bytes_type(connection),
        bind=":v",
        convert=convert,
    )


def downgrade() -> None:
    """Back to 0011's packed text (and its generated column where pgvector is)."""
    if context.is_offline_mode():
        raise RuntimeError("0016 converts stored vectors: run it online")
    connection = op.get_bind()
    native = connection.dialect.name == "postgresql" and _column_type(connection) == "vector"
    if native:
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")

    def convert(value: Any, _model: str | None) -> str:
        if native:
            return _pack(_from_vector_text(value))
        return _pack(_from_bytes(bytes(value)))

    _rewrite(
        connection,
        select_value="embedding::text" if native else "embedding",
        new_type="TEXT",
        bind=":v",
        convert=convert,
    )
    if connection.dialect.name == "postgresql":
        script = ScriptDirectory.from_config(context.config).get_revision("0011_store_vectors")
        if script is not None:
            script.module.add_vector_column(connection)
