"""Long-term memory: the Agent Protocol store over SQL, per tenant, with semantic search.

Items live at (tenant, namespace, key); a namespace is a path of labels such as
`("users", "u-42", "memories")`. Every function takes the tenant and filters on it, so another
tenant's item is indistinguishable from a missing one. Items may expire (a per-item TTL or
STORE_DEFAULT_TTL_SECONDS): expired items are invisible at once and `purge_expired()` deletes
them. Search ranks by cosine similarity of embeddings (shared/memory/embeddings.py) over the newest
STORE_SEARCH_MAX_CANDIDATES live items under the prefix: inside PostgreSQL with pgvector where
the database has `store_items.embedding_vec` (shared/memory/vector_search.py; only the page is
read), else in Python (SQLite, Postgres without pgvector, CockroachDB, STORE_VECTOR_SEARCH=off).
Both
give the same items in the same order with the same scores (to float32 rounding).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement, and_, column, func, or_
from sqlalchemy import delete as sql_delete
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import PayloadTooLarge, ValidationFailed
from shared.core.settings import get_settings
from shared.db.engine import db_session, get_engine
from shared.db.memory_models import NAMESPACE_SEPARATOR, StoreItem
from shared.db.models import utcnow
from shared.memory import vector_search
from shared.memory.embeddings import cosine_scores, get_embedder, pack

Namespace = tuple[str, ...]

MAX_NAMESPACE_DEPTH = 10
MAX_LABEL_CHARS = 64
# What validate_namespace accepts as a label, as a JSON Schema pattern (for the document).
LABEL_PATTERN = "^[^.\\u0000-\\u001f]{1,64}$"
MAX_KEY_CHARS = 256
MAX_NAMESPACE_CHARS = 512
MAX_INDEX_TEXT_CHARS = 8_000
MAX_PAGE = 1_000
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
    embedding: str | None = None
    model_id: str | None = None
    if index is not False:
        text = index_text(document, list(index) if index is not None else None)
        if text.strip():
            embedder = get_embedder()
            [vector] = await embedder.embed([text])
            embedding, model_id = pack(vector), embedder.model_id
    stored_ns = join_namespace(labels)
    for attempt in range(2):
        async with db_session() as db:
            row = await db.get(StoreItem, (tenant_id, stored_ns, key))
            if row is None:
                row = StoreItem(tenant_id=tenant_id, namespace=stored_ns, key=key, created_at=now)
            row.value = document
            row.embedding = embedding
            row.embedding_model = model_id
            row.updated_at = now
            row.expires_at = expires_at
            db.add(row)
            try:
                await db.commit()
            except IntegrityError:
                # A concurrent put inserted the same key first; the second pass updates it.
                if attempt == 1:
                    raise
                continue
            return _to_item(row)
    raise AssertionError("unreachable")  # pragma: no cover


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
    score (items without a comparable embedding come last). Without: newest first. `filter`
    keeps items whose value matches (`{field: value}` or `{field: {"$gt": 3}}`).
    """
    prefix = validate_namespace(namespace_prefix, allow_empty=True)
    conditions = validate_filter(filter)
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationFailed(f"limit is 1..{MAX_PAGE} and offset is 0 or more.")
    now = utcnow()
    where = [_live(tenant_id, now)]
    if (under := _under(prefix)) is not None:
        where.append(under)
    newest_first = (col(StoreItem.updated_at).desc(), col(StoreItem.key))
    semantic = bool(query and query.strip())
    in_database = semantic and await vector_search.in_database(get_engine())
    async with db_session() as db:
        if not query or not query.strip():
            stmt = select(StoreItem).where(*where).order_by(*newest_first)
            if not conditions:
                rows = (await db.exec(stmt.offset(offset).limit(limit))).all()
                return [_to_item(r) for r in rows]
            cap = get_settings().store_search_max_candidates
            rows = (await db.exec(stmt.limit(cap))).all()
            matching = [r for r in rows if _matches(r.value, conditions)]
            return [_to_item(r) for r in matching[offset : offset + limit]]

        embedder = get_embedder()
        [query_vector] = await embedder.embed([query])
        model_id = embedder.model_id
        cap = get_settings().store_search_max_candidates
        if in_database:
            return await _rank_in_database(
                db,
                tenant_id,
                where,
                query_vector,
                model_id,
                conditions,
                cap=cap,
                offset=offset,
                limit=limit,
            )
        columns: list[Any] = [
            col(StoreItem.namespace),
            col(StoreItem.key),
            col(StoreItem.embedding),
            col(StoreItem.embedding_model),
        ]
        if conditions:
            columns.append(col(StoreItem.value))
        # Core, not ORM: tens of thousands of plain tuples, no identity map.
        connection = await db.connection()
        candidates: Sequence[Any] = (
            await connection.execute(
                sa_select(*columns).where(*where).order_by(*newest_first).limit(cap)
            )
        ).all()
        if conditions:
            candidates = [row for row in candidates if _matches(row[4], conditions)]
        # A vector from another model (or none: index=False) is not comparable: ranked last.
        scores = cosine_scores(
            query_vector, [row[2] if row[3] == model_id else None for row in candidates]
        )
        scored = [
            (-2.0 if score is None else score, position, row[0], row[1])
            for position, (row, score) in enumerate(zip(candidates, scores, strict=True))
        ]
        # Best score first; ties keep newest-first order.
        scored.sort(key=lambda s: (-s[0], s[1]))
        page = scored[offset : offset + limit]
        if not page:
            return []
        wanted = or_(
            *(
                and_(col(StoreItem.namespace) == ns, col(StoreItem.key) == key)
                for _, _, ns, key in page
            )
        )
        rows_by_id = {
            (r.namespace, r.key): r
            for r in (await db.exec(select(StoreItem).where(where[0], wanted))).all()
        }
    results: list[MemoryItem] = []
    for score, _, ns, key in page:
        found = rows_by_id.get((ns, key))
        if found is not None:  # deleted between the two reads
            results.append(_to_item(found, score if score > -2.0 else None))
    return results


async def _rank_in_database(
    db: AsyncSession,
    tenant_id: str,
    where: Sequence[ColumnElement[bool]],
    query_vector: Sequence[float],
    model_id: str,
    conditions: Mapping[str, Any],
    *,
    cap: int,
    offset: int,
    limit: int,
) -> list[MemoryItem]:
    """`search`'s ranking computed by PostgreSQL with pgvector: the same candidates (the
    newest `cap` live rows under the prefix), order (score, then newest first; rows without a
    comparable vector last) and scores as the Python ranking, but only the page is read.

    The score is computed while the candidates are scanned, so sorts carry a float, not the
    vector; the page's values are then joined back by primary key. A filter is applied in
    Python to the rows as they arrive in ranked order (the stored JSON compared exactly as
    `_matches` does, which SQL JSON operators would not reproduce), until the page is full.
    """
    score = vector_search.score_expression(
        column(vector_search.COLUMN), col(StoreItem.embedding_model), query_vector, model_id
    ).label("score")
    values = [col(StoreItem.value), col(StoreItem.created_at), col(StoreItem.expires_at)]
    candidates = (
        sa_select(
            col(StoreItem.namespace),
            col(StoreItem.key),
            col(StoreItem.updated_at),
            *(values if conditions else []),
            score,
        )
        .where(*where)
        .order_by(col(StoreItem.updated_at).desc(), col(StoreItem.key))
        .limit(cap)
        .subquery("candidates")
    )
    c = candidates.c
    best_first = (c["score"].desc().nulls_last(), c["updated_at"].desc(), c["key"])
    connection = await db.connection()
    if conditions:
        wanted = offset + limit
        matched: list[MemoryItem] = []
        ranked = sa_select(candidates).order_by(*best_first)
        result = await connection.stream(ranked.execution_options(yield_per=256))
        try:
            async for row in result:
                if _matches(row.value, conditions):
                    matched.append(_to_item(row, row.score))
                    if len(matched) == wanted:
                        break
        finally:
            await result.close()
        return matched[offset:]
    page = (
        sa_select(c["namespace"], c["key"], c["updated_at"], c["score"])
        .order_by(*best_first)
        .offset(offset)
        .limit(limit)
        .subquery("page")
    )
    p = page.c
    same_row = and_(
        col(StoreItem.tenant_id) == tenant_id,
        col(StoreItem.namespace) == p["namespace"],
        col(StoreItem.key) == p["key"],
    )
    stmt = (
        sa_select(col(StoreItem.namespace), col(StoreItem.key), col(StoreItem.updated_at), *values)
        .add_columns(p["score"])
        .join_from(page, StoreItem, same_row)
        .order_by(p["score"].desc().nulls_last(), p["updated_at"].desc(), p["key"])
    )
    rows = (await connection.execute(stmt)).all()
    return [_to_item(row, row.score) for row in rows]


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
