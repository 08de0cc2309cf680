"""Where and how the store's vectors live and are searched: pgvector, sqlite-vec, or the exact scan.

`store_items.embedding` (migrations/versions/0016_native_vectors.py) is either

- `vector(n)` on PostgreSQL with pgvector, with an HNSW index (cosine): search is an
  approximate nearest-neighbour query, filtered by tenant, namespace and model in the same
  query (`hnsw.iterative_scan`, pgvector >= 0.8, so a selective filter still fills the page);
- float32 bytes everywhere else: on SQLite with sqlite-vec loaded (shared/db/sqlite_driver.py)
  search runs in SQL with `vec_distance_cosine` (sqlite-vec has no ANN index: an exact scan in
  C over the filtered rows); on Postgres without pgvector and CockroachDB, or where sqlite-vec
  cannot be loaded, or with STORE_VECTOR_SEARCH=exact, it is **the exact scan**: the newest
  STORE_SEARCH_MAX_CANDIDATES vectors under the prefix scored with numpy in Python.

Every path scores cosine similarity (1 - cosine distance) and orders best first, then newest
first. `storage()` probes the database once per engine, on first use: never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from weakref import WeakKeyDictionary

import numpy as np
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    LargeBinary,
    bindparam,
    cast,
    func,
    literal,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.core.settings import get_settings

log = logging.getLogger(__name__)

Mode = Literal["pgvector", "sqlite-vec", "exact"]
# pgvector's ef_search upper bound; a page needs at least as many candidates as it returns.
EF_SEARCH_MAX = 1_000

_COLUMN_TYPE = text(
    "SELECT t.typname, a.atttypmod FROM pg_catalog.pg_attribute AS a"
    " JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid"
    " WHERE a.attrelid = to_regclass('store_items') AND a.attname = 'embedding'"
    " AND NOT a.attisdropped"
)


@dataclass(frozen=True, slots=True)
class Storage:
    """What the database holds: `vector(dimensions)` (pgvector) or float32 bytes."""

    native: bool
    dimensions: int | None
    sqlite_vec: bool

    @property
    def mode(self) -> Mode:
        """How semantic search runs here (STORE_VECTOR_SEARCH=exact forces the exact scan)."""
        if get_settings().store_vector_search in ("exact", "off"):
            return "exact"
        if self.native:
            return "pgvector"
        return "sqlite-vec" if self.sqlite_vec else "exact"


_probed: WeakKeyDictionary[AsyncEngine, Storage] = WeakKeyDictionary()


async def storage(engine: AsyncEngine) -> Storage:
    """The engine's vector storage (probed once per engine)."""
    found = _probed.get(engine)
    if found is None:
        found = await _probe(engine)
        _probed[engine] = found
    return found


async def _probe(engine: AsyncEngine) -> Storage:
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            try:
                await conn.execute(text("SELECT vec_version()"))
                found = Storage(native=False, dimensions=None, sqlite_vec=True)
            except DBAPIError:
                found = Storage(native=False, dimensions=None, sqlite_vec=False)
    elif engine.dialect.name == "postgresql":
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(_COLUMN_TYPE)).first()
        except DBAPIError as exc:
            # CockroachDB lacks these catalogs: bytes. Connection errors are not caught by
            # the engine this way: they raise OperationalError, and the search fails anyway.
            log.info("no pgvector catalog (%s)", type(exc.orig).__name__)
            row = None
        native = row is not None and row[0] == "vector"
        dims = int(row[1]) if native and row is not None and row[1] > 0 else None
        found = Storage(native=native, dimensions=dims, sqlite_vec=False)
    else:
        found = Storage(native=False, dimensions=None, sqlite_vec=False)
    log.info("store search: %s", found.mode if found.mode != "exact" else "the exact scan")
    return found


def forget() -> None:
    """Drop every engine's probe result (after a migration changed the column under it)."""
    _probed.clear()


def _floats(vector: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.asarray(vector, dtype="<f4")


def _vector_type(dimensions: int | None) -> Any:
    # Function-local: pgvector's SQLAlchemy types load only where the column is a vector.
    from pgvector.sqlalchemy import VECTOR

    return VECTOR(dimensions)


def column_type(store: Storage) -> Any:
    """The SQLAlchemy type `embedding` is written with: pgvector's, or bytes."""
    return _vector_type(store.dimensions) if store.native else LargeBinary()


def encode(store: Storage, vector: Sequence[float]) -> Any:
    """The value to write into `embedding` for `vector` (None: it cannot be stored).

    A vector whose width is not the column's (`vector(n)`, fixed per deployment) is not
    stored: the item stays searchable without a query, like an item put with index=False.
    """
    if store.native:
        if store.dimensions is not None and len(vector) != store.dimensions:
            log.warning(
                "an embedding of %d values does not fit vector(%d): stored without it",
                len(vector),
                store.dimensions,
            )
            return None
        return _floats(vector)
    return _floats(vector).tobytes()


def stored_value(store: Storage, vector: Sequence[float]) -> BindParameter[Any] | None:
    """`encode`'s value bound with `column_type` (None: it cannot be stored)."""
    value = encode(store, vector)
    return None if value is None else bindparam("embedding", value, type_=column_type(store))


def distance(store: Storage, column: ColumnElement[Any], query: Sequence[float]) -> Any:
    """Cosine distance between the stored column and the query, in the database's SQL."""
    if store.native:
        vector = _vector_type(None)
        bound = cast(bindparam("query", _floats(query), type_=vector), vector)
        return column.op("<=>", return_type=Float())(bound)
    return func.vec_distance_cosine(
        column, bindparam("query", _floats(query).tobytes(), type_=LargeBinary())
    )


def comparable_width(store: Storage, column: ColumnElement[Any], dimensions: int) -> Any:
    """Rows whose stored vector has the query's width (sqlite-vec raises on a mismatch); on
    pgvector every row has the column's width, so only a query of another width excludes all."""
    if store.native:
        return literal(store.dimensions in (None, dimensions))
    return func.length(column) == 4 * dimensions


def ef_search(wanted: int) -> int:
    """The HNSW candidate list size for a page of `wanted` rows (STORE_HNSW_EF_SEARCH or more)."""
    return max(get_settings().store_hnsw_ef_search, min(EF_SEARCH_MAX, wanted))


def exact_scores(query: Sequence[float], stored: Sequence[Any]) -> list[float | None]:
    """The exact scan: cosine similarity of the query with each stored vector (None: none or
    another width). Stored vectors are float32 bytes, or arrays read from a pgvector column.

    Bytes are joined and decoded in one call into an (n, d) matrix, and one matrix-vector
    product scores them all.
    """
    q = _floats(query)
    width = len(q)
    scores: list[float | None] = [None] * len(stored)
    rows: list[int] = []
    chunks: list[bytes] = []
    for slot, value in enumerate(stored):
        if value is None:
            continue
        raw = (
            bytes(value)
            if isinstance(value, bytes | bytearray | memoryview)
            else np.asarray(value, dtype="<f4").tobytes()
        )
        if len(raw) == 4 * width:
            rows.append(slot)
            chunks.append(raw)
    norm_q = float(np.linalg.norm(q))
    if not rows or not norm_q:
        return scores
    matrix = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(rows), width)
    norms = np.linalg.norm(matrix, axis=1) * norm_q
    sims = (matrix @ q) / np.where(norms == 0, 1.0, norms)
    for slot, value in zip(rows, sims.astype(float).tolist(), strict=True):
        scores[slot] = value
    return scores
