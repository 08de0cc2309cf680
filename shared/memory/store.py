"""Long-term memory: the Agent Protocol store over SQL, per tenant, with semantic search.

Items live at (tenant, namespace, key); a namespace is a path of labels such as
`("users", "u-42", "memories")`. Every function takes the tenant and filters on it, so another
tenant's item is indistinguishable from a missing one. Items may expire (a per-item TTL or
STORE_DEFAULT_TTL_SECONDS): expired items are invisible at once and `purge_expired()` deletes
them. Search ranks by cosine similarity of embeddings (shared/memory/embeddings.py) in the
database: pgvector's HNSW index, or sqlite-vec; where neither exists (Postgres without pgvector,
CockroachDB, STORE_VECTOR_SEARCH=exact) it is the exact scan of the newest
STORE_SEARCH_MAX_CANDIDATES items (shared/memory/vector_search.py, docs/memory-search.md).
Every path gives the same items in the same order with the same scores (to float32 rounding),
except that HNSW is approximate on large namespaces.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement, Select, and_, func, literal, null, or_, type_coerce
from sqlalchemy import delete as sql_delete
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from shared.core.errors import PayloadTooLarge, ValidationFailed
from shared.core.settings import get_settings
from shared.db.engine import db_session, get_engine
from shared.db.memory_models import NAMESPACE_SEPARATOR, StoreItem
from shared.db.models import utcnow
from shared.db.types import as_utc
from shared.memory import vector_search
from shared.memory.embeddings import get_embedder

Namespace = tuple[str, ...]

MAX_NAMESPACE_DEPTH = 10
MAX_LABEL_CHARS = 64
# What validate_namespace accepts as a label, as a JSON Schema pattern (for the document).
LABEL_PATTERN = "^[^.\\u0000-\\u001f]{1,64}$"
MAX_KEY_CHARS = 256
MAX_NAMESPACE_CHARS = 512
MAX_INDEX_TEXT_CHARS = 8_000
MAX_PAGE = 1_000
_PRIMARY_KEY = ("tenant_id", "namespace", "key")
_FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """A stored item as readers see it; `score` is set by semantic search."""

    namespace: Namespace
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    score: float | None = None

    def to_api(self) -> dict[str, Any]:
        """The Agent Protocol `Item` (plus `score` when searched by query)."""
        body: dict[str, Any] = {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.score is not None:
            body["score"] = round(self.score, 6)
        return body


# ---------------------------------------------------------------------------------------------
# Validation and encoding
# ---------------------------------------------------------------------------------------------


def validate_namespace(namespace: Sequence[str], *, allow_empty: bool = False) -> Namespace:
    """Check a namespace path and return it as a tuple, or raise ValidationFailed."""
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise ValidationFailed("The namespace must have at least one label.")
    if len(labels) > MAX_NAMESPACE_DEPTH:
        raise ValidationFailed(f"A namespace has at most {MAX_NAMESPACE_DEPTH} labels.")
    for label in labels:
        if not isinstance(label, str) or not label or len(label) > MAX_LABEL_CHARS:
            raise ValidationFailed(
                f"Namespace labels are non-empty strings of at most {MAX_LABEL_CHARS} characters."
            )
        if "." in label or any(ord(ch) < 32 for ch in label):
            raise ValidationFailed("Namespace labels may not contain '.' or control characters.")
    if len(join_namespace(labels)) > MAX_NAMESPACE_CHARS:
        raise ValidationFailed(f"A namespace is at most {MAX_NAMESPACE_CHARS} characters.")
    return labels


def validate_key(key: str) -> str:
    """Check an item key, or raise ValidationFailed."""
    if not key or len(key) > MAX_KEY_CHARS or any(ord(ch) < 32 for ch in key):
        raise ValidationFailed(
            f"The key is a non-empty string of at most {MAX_KEY_CHARS} printable characters."
        )
    return key


def join_namespace(namespace: Sequence[str]) -> str:
    """The stored form of a namespace: its labels joined by the unit separator."""
    return NAMESPACE_SEPARATOR.join(namespace)


def split_namespace(stored: str) -> Namespace:
    """The labels of a stored namespace."""
    return tuple(stored.split(NAMESPACE_SEPARATOR)) if stored else ()


def _leaf_texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        out.append(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _leaf_texts(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaf_texts(item, out)


def _lookup(value: Mapping[str, Any], path: str) -> Any:
    current: Any = value
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def index_text(value: Mapping[str, Any], fields: Sequence[str] | None = None) -> str:
    """The text embedded for a value: the named fields (dotted paths), else every leaf."""
    parts: list[str] = []
    if fields:
        for path in fields:
            _leaf_texts(_lookup(value, path), parts)
    else:
        _leaf_texts(value, parts)
    return "\n".join(parts)[:MAX_INDEX_TEXT_CHARS]


def _matches(value: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Whether a value satisfies a filter: `{field: value}` or `{field: {"$op": value}}`."""
    for path, expected in conditions.items():
        actual = _lookup(value, path)
        ops = expected if isinstance(expected, Mapping) and expected else {"$eq": expected}
        for op, operand in ops.items():
            if not _compare(op, actual, operand):
                return False
    return True


def _compare(op: str, actual: Any, operand: Any) -> bool:
    if op == "$eq":
        return bool(actual == operand)
    if op == "$ne":
        return bool(actual != operand)
    if op in ("$in", "$nin"):
        found = isinstance(operand, list) and actual in operand
        return found if op == "$in" else not found
    try:
        match op:
            case "$gt":
                return bool(actual > operand)
            case "$gte":
                return bool(actual >= operand)
            case "$lt":
                return bool(actual < operand)
            case _:
                return bool(actual <= operand)
    except TypeError:
        return False  # e.g. comparing a missing field or a string with a number


def validate_filter(conditions: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a search filter's operators, or raise ValidationFailed."""
    if not conditions:
        return {}
    for expected in conditions.values():
        if isinstance(expected, Mapping) and any(k.startswith("$") for k in expected):
            unknown = [k for k in expected if k not in _FILTER_OPERATORS]
            if unknown:
                raise ValidationFailed(
                    "Unknown filter operator; use " + ", ".join(sorted(_FILTER_OPERATORS)) + "."
                )
    return dict(conditions)


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def _live(tenant_id: str, now: datetime) -> ColumnElement[bool]:
    """The tenant's rows that have not expired."""
    return and_(
        col(StoreItem.tenant_id) == tenant_id,
        or_(col(StoreItem.expires_at).is_(None), col(StoreItem.expires_at) > now),
    )


def _under(prefix: Namespace) -> ColumnElement[bool] | None:
    """Rows whose namespace equals the prefix or lies below it (substr: no LIKE escaping)."""
    if not prefix:
        return None
    joined = join_namespace(prefix)
    below = joined + NAMESPACE_SEPARATOR
    return or_(
        col(StoreItem.namespace) == joined,
        func.substr(col(StoreItem.namespace), 1, len(below)) == below,
    )


class _ItemRow(Protocol):
    """What `_to_item` reads: a StoreItem, or a row of those columns."""

    @property
    def namespace(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...


def _to_item(row: _ItemRow, score: float | None = None) -> MemoryItem:
    return MemoryItem(
        namespace=split_namespace(row.namespace),
        key=row.key,
        value=dict(row.value),
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        score=score,
    )


def _expiry(now: datetime, ttl_seconds: float | None) -> datetime | None:
    if ttl_seconds is None:
        ttl_seconds = get_settings().store_default_ttl_seconds
    if ttl_seconds is None:
        return None
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise ValidationFailed("ttl must be a positive number.")
    return now + timedelta(seconds=ttl_seconds)


async def put(
    *,
    tenant_id: str,
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    ttl_seconds: float | None = None,
    index: Literal[False] | Sequence[str] | None = None,
) -> MemoryItem:
    """Insert or replace the item at (namespace, key); embed it unless `index` is False.

    `ttl_seconds` None means STORE_DEFAULT_TTL_SECONDS (which may be unset: no expiry).
    `index` names the value's fields to embed (dotted paths); None embeds every text leaf.
    """
    labels = validate_namespace(namespace)
    validate_key(key)
    document = dict(value)
    limit = get_settings().store_max_value_bytes
    if len(json.dumps(document, separators=(",", ":"))) > limit:
        raise PayloadTooLarge(f"A stored value may be at most {limit} bytes of JSON.")
    now = utcnow()
    expires_at = _expiry(now, ttl_seconds)
    embedding: Any = None
    model_id: str | None = None
    if index is not False:
        text = index_text(document, list(index) if index is not None else None)
        if text.strip():
            embedder = get_embedder()
            [vector] = await embedder.embed([text])
            engine = get_engine()
            embedding = vector_search.stored_value(await vector_search.storage(engine), vector)
            model_id = embedder.model_id if embedding is not None else None
    table = StoreItem.__table__  # type: ignore[attr-defined]
    insert = sqlite_insert if get_engine().dialect.name == "sqlite" else pg_insert
    stmt = insert(table).values(
        tenant_id=tenant_id,
        namespace=join_namespace(labels),
        key=key,
        value=document,
        embedding=embedding if embedding is not None else null(),
        embedding_model=model_id,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
    )
    # One statement: a concurrent put of the same key updates instead of failing.
    replace = {
        name: stmt.excluded[name]
        for name in ("value", "embedding", "embedding_model", "updated_at", "expires_at")
    }
    upsert = stmt.on_conflict_do_update(index_elements=list(_PRIMARY_KEY), set_=replace)
    async with db_session() as db:
        connection = await db.connection()
        created_at = (await connection.execute(upsert.returning(table.c.created_at))).scalar_one()
        await db.commit()
    return MemoryItem(
        namespace=labels,
        key=key,
        value=document,
        created_at=as_utc(created_at),
        updated_at=now,
        expires_at=expires_at,
    )


async def get(*, tenant_id: str, namespace: Sequence[str], key: str) -> MemoryItem | None:
    """Return the tenant's live item at (namespace, key), or None."""
    labels = validate_namespace(namespace)
    validate_key(key)
    stmt = select(StoreItem).where(
        _live(tenant_id, utcnow()),
        col(StoreItem.namespace) == join_namespace(labels),
        col(StoreItem.key) == key,
    )
    async with db_session() as db:
        row = (await db.exec(stmt)).first()
    return _to_item(row) if row is not None else None


async def delete(*, tenant_id: str, namespace: Sequence[str], key: str) -> bool:
    """Delete the tenant's item at (namespace, key); return whether a live item was there."""
    labels = validate_namespace(namespace)
    validate_key(key)
    where = (
        col(StoreItem.tenant_id) == tenant_id,
        col(StoreItem.namespace) == join_namespace(labels),
        col(StoreItem.key) == key,
    )
    now = utcnow()
    async with db_session() as db:
        live = (await db.exec(select(StoreItem.key).where(_live(tenant_id, now), *where))).first()
        await db.exec(sql_delete(StoreItem).where(*where))
        await db.commit()
    return live is not None


async def search(
    *,
    tenant_id: str,
    namespace_prefix: Sequence[str] = (),
    query: str | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> list[MemoryItem]:
    """Find the tenant's live items under a namespace prefix.

    With a query: the best `limit` matches by cosine similarity, after `offset`, each with its
    score; items without a comparable embedding (index=False, another model) follow, newest
    first, unscored. Without: newest first. `filter` keeps items whose value matches
    (`{field: value}` or `{field: {"$gt": 3}}`); with a query it is applied to the best
    STORE_SEARCH_MAX_CANDIDATES matches. How the ranking runs: shared/memory/vector_search.py.
    """
    prefix = validate_namespace(namespace_prefix, allow_empty=True)
    conditions = validate_filter(filter)
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationFailed(f"limit is 1..{MAX_PAGE} and offset is 0 or more.")
    now = utcnow()
    where = [_live(tenant_id, now)]
    if (under := _under(prefix)) is not None:
        where.append(under)
    cap = get_settings().store_search_max_candidates
    if not query or not query.strip():
        stmt = select(StoreItem).where(*where).order_by(*_NEWEST_FIRST)
        async with db_session() as db:
            if not conditions:
                rows = (await db.exec(stmt.offset(offset).limit(limit))).all()
                return [_to_item(r) for r in rows]
            rows = (await db.exec(stmt.limit(cap))).all()
        matching = [r for r in rows if _matches(r.value, conditions)]
        return [_to_item(r) for r in matching[offset : offset + limit]]

    embedder = get_embedder()
    [query_vector] = await embedder.embed([query])
    store = await vector_search.storage(get_engine())
    model_id = embedder.model_id
    # Without a filter only the page is read; with one, rows are read (up to the cap) until
    # `offset + limit` of them match.
    wanted = offset + limit
    reads = wanted if not conditions else cap
    found: list[MemoryItem] = []
    async with db_session() as db:
        connection = await db.connection()
        if store.mode == "exact":
            scored, exhausted = await _exact_scan(
                connection, store, where, query_vector, model_id, conditions, wanted, cap
            )
        else:
            scored, exhausted = await _nearest(
                connection,
                store,
                where,
                query_vector,
                model_id,
                conditions,
                wanted,
                reads,
                count_on=(tenant_id, prefix, under),
            )
        found.extend(scored)
        if len(found) < wanted and exhausted:
            # NULL-safe: a row that is not comparable for any reason follows, unscored.
            comparable = func.coalesce(_comparable(store, model_id, len(query_vector)), False)
            unscored = (
                sa_select(*_ITEM_COLUMNS)
                .where(*where, ~comparable)
                .order_by(*_NEWEST_FIRST)
                .limit(reads)
            )
            found.extend(await _take(connection, unscored, conditions, wanted - len(found)))
    return found[offset:wanted]


_ITEM_COLUMNS = (
    col(StoreItem.namespace),
    col(StoreItem.key),
    col(StoreItem.value),
    col(StoreItem.created_at),
    col(StoreItem.updated_at),
    col(StoreItem.expires_at),
)
_NEWEST_FIRST = (col(StoreItem.updated_at).desc(), col(StoreItem.key))


def _embedding() -> ColumnElement[Any]:
    column: ColumnElement[Any] = StoreItem.__table__.c.embedding  # type: ignore[attr-defined]
    return column


def _comparable(store: vector_search.Storage, model_id: str, width: int) -> ColumnElement[bool]:
    """Rows whose vector can be compared with the query: the same model and width."""
    return and_(
        _embedding().is_not(None),
        col(StoreItem.embedding_model) == model_id,
        vector_search.comparable_width(store, _embedding(), width),
    )


async def _take(
    connection: AsyncConnection,
    stmt: Select[Any],
    conditions: Mapping[str, Any],
    wanted: int,
) -> list[MemoryItem]:
    """Read unscored rows in the statement's order until `wanted` of them pass the filter."""
    if not conditions:
        rows = (await connection.execute(stmt)).all()
        return [_to_item(r) for r in rows[:wanted]]
    taken: list[MemoryItem] = []
    result = await connection.stream(stmt.execution_options(yield_per=256))
    try:
        async for row in result:
            if _matches(row.value, conditions):
                taken.append(_to_item(row))
                if len(taken) == wanted:
                    break
    finally:
        await result.close()
    return taken


async def _nearest(
    connection: AsyncConnection,
    store: vector_search.Storage,
    where: Sequence[ColumnElement[bool]],
    query_vector: Sequence[float],
    model_id: str,
    conditions: Mapping[str, Any],
    wanted: int,
    reads: int,
    *,
    count_on: tuple[str, Namespace, ColumnElement[bool] | None],
) -> tuple[list[MemoryItem], bool]:
    """The database's nearest neighbours (pgvector HNSW or sqlite-vec), filtered in the query.

    Returns the matches and whether every comparable row was seen (so unscored rows follow).
    sqlite-vec, and pgvector for a prefix holding fewer than STORE_VECTOR_EXACT_BELOW items,
    rank exactly in SQL (distance, then newest first). Otherwise pgvector walks the HNSW
    index: approximate, with `hnsw.iterative_scan` scanning on until the filtered page is full;
    the inner query orders by distance alone (what the index serves; sorts are disabled so the
    planner, which cannot estimate the namespace filter, does not trade the index for a sort of
    the whole tenant), and the outer one breaks ties newest first. A walk that ends short of the
    page (its scan bound reached) is redone exactly.
    """
    distance = vector_search.distance(store, _embedding(), query_vector).label("distance")
    comparable = _comparable(store, model_id, len(query_vector))
    if store.mode == "pgvector" and await _large(connection, *count_on):
        # One round trip: SET LOCAL for the walk (set_config(..., true) is transaction-local).
        settings = sa_select(
            func.set_config("hnsw.iterative_scan", "relaxed_order", True),
            func.set_config("hnsw.ef_search", str(vector_search.ef_search(wanted)), True),
            func.set_config("enable_sort", "off", True),
        )
        await connection.execute(settings)
        nearest = (
            sa_select(*_ITEM_COLUMNS, distance)
            .where(*where, comparable)
            .order_by(distance)
            .limit(reads)
            .cte("nearest")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        c = nearest.c
        ann = sa_select(nearest).order_by(c.distance, c.updated_at.desc(), c.key)
        found, exhausted = await _ranked(connection, ann, conditions, wanted, reads)
        if not exhausted:
            return found, exhausted
        await connection.execute(sa_select(func.set_config("enable_sort", "on", True)))
    # `distance + 0`: an expression no index serves, so the ranking is exact.
    exact = (
        sa_select(*_ITEM_COLUMNS, distance)
        .where(*where, comparable)
        .order_by(distance + 0, *_NEWEST_FIRST)
        .limit(reads)
    )
    return await _ranked(connection, exact, conditions, wanted, reads)


# (tenant, prefix, bound) -> (monotonic time, large?): the count's answer, kept a while. A stale
# answer costs speed, never correctness: a walk that comes up short is redone exactly.
_SIZES: dict[tuple[str, str, int], tuple[float, bool]] = {}
_SIZES_TTL_SECONDS = 60.0
_SIZES_MAX = 10_000


async def _large(
    connection: AsyncConnection,
    tenant_id: str,
    prefix: Namespace,
    under: ColumnElement[bool] | None,
) -> bool:
    """Whether the tenant has at least STORE_VECTOR_EXACT_BELOW items under the prefix.

    Counted up to that bound on the primary key's index (tenant, namespace), live or not: a
    cheap estimate that decides between the exact ranking and the HNSW walk; remembered for a
    minute per (tenant, prefix).
    """
    bound = get_settings().store_vector_exact_below
    key = (tenant_id, join_namespace(prefix), bound)
    now = time.monotonic()
    known = _SIZES.get(key)
    if known is not None and now - known[0] < _SIZES_TTL_SECONDS:
        return known[1]
    where = [col(StoreItem.tenant_id) == tenant_id, *([under] if under is not None else [])]
    some = sa_select(literal(1)).where(*where).limit(bound).subquery()
    counted = (await connection.execute(sa_select(func.count()).select_from(some))).scalar_one()
    if len(_SIZES) >= _SIZES_MAX:
        _SIZES.clear()  # a bound on memory; the next searches count again
    _SIZES[key] = (now, int(counted) >= bound)
    return int(counted) >= bound


async def _ranked(
    connection: AsyncConnection,
    stmt: Select[Any],
    conditions: Mapping[str, Any],
    wanted: int,
    reads: int,
) -> tuple[list[MemoryItem], bool]:
    """Rows of a ranking statement (with `distance`) until `wanted` pass the filter, and
    whether the statement ran out of rows before its `reads` bound."""
    if not conditions:
        rows = (await connection.execute(stmt)).all()
        return [_to_item(r, 1.0 - float(r.distance)) for r in rows], len(rows) < reads
    taken: list[MemoryItem] = []
    seen = 0
    result = await connection.stream(stmt.execution_options(yield_per=256))
    try:
        async for row in result:
            seen += 1
            if _matches(row.value, conditions):
                taken.append(_to_item(row, 1.0 - float(row.distance)))
                if len(taken) == wanted:
                    break
    finally:
        await result.close()
    return taken, len(taken) < wanted and seen < reads


async def _exact_scan(
    connection: AsyncConnection,
    store: vector_search.Storage,
    where: Sequence[ColumnElement[bool]],
    query_vector: Sequence[float],
    model_id: str,
    conditions: Mapping[str, Any],
    wanted: int,
    cap: int,
) -> tuple[list[MemoryItem], bool]:
    """The exact scan (no vector search in the database): the newest `cap` comparable rows
    under the prefix scored with numpy, then the page's values read by primary key."""
    comparable = _comparable(store, model_id, len(query_vector))
    # Read as what the column holds: pgvector's type parses `vector(n)`, bytes stay bytes.
    stored = type_coerce(_embedding(), vector_search.column_type(store))
    columns: list[Any] = [col(StoreItem.namespace), col(StoreItem.key), stored]
    if conditions:
        columns.append(col(StoreItem.value))
    # Core, not ORM: tens of thousands of plain tuples, no identity map.
    candidates: Sequence[Any] = (
        await connection.execute(
            sa_select(*columns).where(*where, comparable).order_by(*_NEWEST_FIRST).limit(cap)
        )
    ).all()
    exhausted = len(candidates) < cap
    if conditions:
        candidates = [row for row in candidates if _matches(row[3], conditions)]
    scores = vector_search.exact_scores(query_vector, [row[2] for row in candidates])
    ranked = sorted(
        ((score, position) for position, score in enumerate(scores) if score is not None),
        key=lambda s: -s[0],  # stable: ties stay newest first
    )[:wanted]
    if not ranked:
        return [], exhausted
    page = [(candidates[p][0], candidates[p][1], score) for score, p in ranked]
    wanted_rows = or_(
        *(and_(col(StoreItem.namespace) == ns, col(StoreItem.key) == key) for ns, key, _ in page)
    )
    rows_by_id = {
        (r.namespace, r.key): r
        for r in (await connection.execute(sa_select(*_ITEM_COLUMNS).where(where[0], wanted_rows)))
    }
    items = [
        _to_item(rows_by_id[(ns, key)], score) for ns, key, score in page if (ns, key) in rows_by_id
    ]
    return items, exhausted and len(ranked) < wanted


async def list_namespaces(
    *,
    tenant_id: str,
    prefix: Sequence[str] = (),
    suffix: Sequence[str] = (),
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Namespace]:
    """The tenant's distinct namespaces holding live items, sorted, optionally truncated.

    `prefix`/`suffix` keep namespaces that start/end with those labels; `max_depth` cuts each
    namespace to its first labels (then de-duplicates), as the Agent Protocol describes.
    """
    start = validate_namespace(prefix, allow_empty=True)
    end = validate_namespace(suffix, allow_empty=True)
    if max_depth is not None and max_depth < 1:
        raise ValidationFailed("max_depth is 1 or more.")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationFailed(f"limit is 1..{MAX_PAGE} and offset is 0 or more.")
    where = [_live(tenant_id, utcnow())]
    if (under := _under(start)) is not None:
        where.append(under)
    stmt = select(col(StoreItem.namespace)).where(*where).distinct()
    async with db_session() as db:
        stored = (await db.exec(stmt)).all()
    found: set[Namespace] = set()
    for labels in (split_namespace(s) for s in stored):
        if end and labels[-len(end) :] != end:
            continue
        found.add(labels[:max_depth] if max_depth is not None else labels)
    return sorted(found)[offset : offset + limit]


async def purge_expired(*, tenant_id: str | None = None, now: datetime | None = None) -> int:
    """Delete expired items (of one tenant, or all); return how many rows were removed."""
    cutoff = now or utcnow()
    where = [col(StoreItem.expires_at).is_not(None), col(StoreItem.expires_at) <= cutoff]
    if tenant_id is not None:
        where.append(col(StoreItem.tenant_id) == tenant_id)
    async with db_session() as db:
        result = await db.exec(sql_delete(StoreItem).where(*where))
        await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def namespaces_as_lists(namespaces: Iterable[Namespace]) -> list[list[str]]:
    """The Agent Protocol's `ListNamespaceResponse`: a list of label lists."""
    return [list(ns) for ns in namespaces]
