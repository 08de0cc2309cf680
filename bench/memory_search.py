"""Semantic search latency of the long-term memory store on SQLite (the embedded default).

Run it with `.venv/bin/python -m bench.memory_search`. It fills one namespace with 1,000 and
then 10,000 items (the offline embedder, bulk inserts), and times `shared.memory.search` with a
query (embed the query, read the namespace's candidates, score cosine in Python, fetch the
page) and, beside it, a search without a query (newest first, paged in SQL) and a `get`.
It prints p50/p95 per size, side by side, and the ratio 10k / 1k of the semantic p50 (the
scan is linear in the namespace size, so ~10 is expected). Nothing is asserted; it is
bounded to well under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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
    from shared import memory
    from shared.db.engine import db_session
    from shared.db.memory_models import StoreItem
    from shared.db.models import utcnow
    from shared.embeddings import OfflineEmbedder, get_embedder, pack

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
    from shared import memory
    from shared.db import repo
    from shared.db.engine import db_session, get_engine
    from shared.db.migrate import migrate

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


def main() -> None:
    """Parse arguments, point settings at a fresh SQLite file, run."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_search", description=__doc__)
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ascent-bench-") as data_dir:
        for name in ("DATABASE_URL", "EMBEDDINGS_PROVIDER", "STORE_DEFAULT_TTL_SECONDS"):
            os.environ.pop(name, None)
        os.environ["ASCENT_DATA_DIR"] = str(Path(data_dir))
        asyncio.run(run(args.repeats))


if __name__ == "__main__":
    main()
