"""Semantic store search inside PostgreSQL with pgvector, where the database has it.

Revision 0011 (migrations/versions/0011_store_vectors.py) gives `store_items`, on PostgreSQL
with the `vector` extension only, a stored generated column `embedding_vec vector` that the
database computes from `embedding`: the same dequantised values `shared.memory.embeddings.unpack`
returns, followed by the pack's 0-2 zero bytes of padding. Every writer keeps it in step
without knowing about it (an older app version during a rolling deploy, bulk loads, SQL).

Where the column exists, `shared.memory.store.search` ranks in SQL with `score_expression` and
reads only the page; elsewhere (SQLite, Postgres without pgvector, CockroachDB, or
STORE_VECTOR_SEARCH=off) it ranks in Python. `in_database` probes for the column once per
engine, on the first semantic search: never at import, never per request. A process that
was running before the column appeared keeps ranking in Python until it restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import NotSupportedError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped
from sqlalchemy.types import UserDefinedType

from shared.core.settings import get_settings
from shared.memory.embeddings import unpacked_width

log = logging.getLogger(__name__)

COLUMN = "embedding_vec"

# The column's type as the catalog has it: 'vector' only where pgvector made it.
_PROBE = text(
    "SELECT t.typname FROM pg_catalog.pg_attribute AS a"
    " JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid"
    " WHERE a.attrelid = to_regclass('store_items') AND a.attname = :column"
    " AND NOT a.attisdropped"
)

_probed: WeakKeyDictionary[AsyncEngine, bool] = WeakKeyDictionary()


class Vector(UserDefinedType[list[float]]):
    """pgvector's `vector`, for binding a query: floats sent in its text form `[x,y,...]`."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """The SQL type name."""
        return "vector"

    def bind_processor(self, dialect: Dialect) -> Callable[[list[float] | None], str | None]:
        """Render the list as pgvector's input text (repr round-trips every float)."""

        def process(value: list[float] | None) -> str | None:
            return None if value is None else "[" + ",".join(map(repr, value)) + "]"

        return process


async def in_database(engine: AsyncEngine) -> bool:
    """Whether semantic search ranks inside this engine's database (probed once per engine)."""
    if get_settings().store_vector_search == "off" or engine.dialect.name != "postgresql":
        return False
    found = _probed.get(engine)
    if found is None:
        found = await _probe(engine)
        _probed[engine] = found
    return found


async def _probe(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            typname = (await conn.execute(_PROBE, {"column": COLUMN})).scalar()
    except (ProgrammingError, NotSupportedError) as exc:
        # A Postgres-compatible database without these catalogs (CockroachDB): rank in Python.
        # Connection errors are not caught: they are not an answer, and the search fails anyway.
        log.info("no in-database vector search (%s)", type(exc.orig).__name__)
        return False
    found = typname == "vector"
    log.info("store search ranks %s", "in the database (pgvector)" if found else "in Python")
    return found


def forget() -> None:
    """Drop every engine's probe result (after adding or dropping the column under it)."""
    _probed.clear()


def score_expression(
    vector: ColumnElement[Any],
    model: ColumnElement[Any] | Mapped[Any],
    query: Sequence[float],
    model_id: str,
) -> ColumnElement[float]:
    """The Python ranking's score in SQL: q · v for rows comparable with the query, else NULL.

    Comparable, as in `shared.memory.embeddings.cosine_scores`: the same embedding model and the
    same packed width (`vector_dims` of the padded values). Inner product (`<#>`, negated),
    not `1 - (<=>)`: stored vectors are dequantised int8 values whose norm is only close to 1,
    and the Python ranking scores the plain dot product; `<#>` gives the same number, cosine
    distance would not. The CASE keeps `<#>` away from rows of another width, where pgvector
    would raise.
    """
    width = unpacked_width(len(query))
    padded = [float(x) for x in query] + [0.0] * (width - len(query))
    bound = cast(literal(padded, Vector()), Vector())
    comparable = and_(model == model_id, func.vector_dims(vector) == width)
    return case((comparable, -vector.op("<#>", return_type=Float())(bound)), else_=None)
