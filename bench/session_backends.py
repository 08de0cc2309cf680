"""Session backends: what one conversation turn costs in each store, side by side with SQLite.

Run it with `.venv/bin/python -m bench.session_backends`. One turn is what the run service asks
of its session per agent run: `get_items(limit=ASCENT_HISTORY_LIMIT)` then `add_items` of two
items (the user message and the answer). Every backend is configured through the environment
and built with `shared.memory.sessions.build_session`, exactly as the app builds it:

- sqlite: a fresh SQLite file (WAL), the embedded default;
- postgres: the database in `DATABASE_URL`, when set (skipped otherwise);
- redis: the real Redis at `REDIS_URL` (default 127.0.0.1:6379), when it answers;
- upstash: `UpstashRedisSession` through `tests.fakes.upstash_rest` (HTTP, then that Redis);
- dapr: the SDK's `DaprSession` through the dapr SDK's gRPC client to `tests.fakes.dapr_sidecar`
  (an in-memory store: the figure is the client, protocol and read-modify-write cost, not a
  real state store's).

Each round runs `--turns` turns per backend on a new thread (so history grows from 0 to
2 x turns items, as a conversation does), backends in a rotating order so drift on a shared
machine hits all of them; the median round is reported as turns/s, with p50 latency and the
ratio to SQLite. The fakes run in threads of this process and share its CPUs and GIL, so their
figures are pessimistic. Only figures from one run compare; nothing here is a threshold.
Bounded: it stops starting rounds after `--budget` seconds (default 30).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
POSTGRES_URL = os.environ.get("DATABASE_URL") or None
UPSTASH_TOKEN = "bench-upstash-token"  # noqa: S105 (a local fake's token, not a secret)

# Every variable a backend reads; each backend's environment is set from a clean slate.
_ENV = (
    "DATABASE_URL",
    "ASCENT_DATA_DIR",
    "SESSION_BACKEND",
    "SESSION_TTL_SECONDS",
    "REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "DAPR_STATE_STORE",
    "DAPR_HTTP_PORT",
    "DAPR_GRPC_PORT",
)


@dataclass
class Result:
    """One backend's measurements: turns/s and per-turn latencies of every round."""

    name: str
    rounds: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Median turns per second over the rounds."""
        return statistics.median(self.rounds)


@contextmanager
def _configured(env: dict[str, str]) -> Iterator[None]:
    """Point the settings at one backend (process env), restoring the caller's env after."""
    from shared.core.settings import get_settings
    from shared.db.engine import _sessionmaker, get_engine

    saved = {var: os.environ.get(var) for var in _ENV}
    for var in _ENV:
        os.environ.pop(var, None)
    os.environ.update(env)
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except redis.RedisError:
        return False


async def _prepare(name: str, env: dict[str, str]) -> tuple[Any, Any]:
    """Build a session factory for one backend (and migrate SQL); returns (factory, engine)."""
    from shared.db.engine import get_engine
    from shared.db.migrate import migrate
    from shared.memory.sessions import build_session

    with _configured(env):
        from shared.core.settings import get_settings

        engine = None
        if get_settings().session_backend == "sql":
            engine = get_engine()
            await migrate(engine)
        tenant = f"bench-{uuid.uuid4().hex[:8]}"
        # Sessions on the SQL backend keep a reference to this engine; the others share the
        # process-wide clients, which are independent caches per backend.
        sessions = [build_session(tenant, f"{name}-{i}") for i in range(64)]
    return iter(sessions), engine


async def _round(session: Any, turns: int, limit: int, result: Result) -> None:
    user = {"role": "user", "content": "What is the weather like in Lisbon today?"}
    answer = {"role": "assistant", "content": "Sunny, 24 degrees, light wind from the north."}
    start = time.perf_counter()
    for _ in range(turns):
        t0 = time.perf_counter()
        await session.get_items(limit=limit)
        await session.add_items([user, answer])
        result.latencies.append(time.perf_counter() - t0)
    result.rounds.append(turns / (time.perf_counter() - start))
    await session.clear_session()


async def main() -> None:
    """Measure every available backend and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50, help="turns per round per backend")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds before stopping")
    args = parser.parse_args()

    from shared.core.settings import get_settings
    from shared.memory.sessions import close_clients
    from tests.fakes.dapr_sidecar import running_sidecar
    from tests.fakes.upstash_rest import running_front

    limit = get_settings().history_limit
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        backends: dict[str, dict[str, str]] = {
            "sqlite": {"SESSION_BACKEND": "sql", "ASCENT_DATA_DIR": tmp},
        }
        skipped: list[str] = []
        if POSTGRES_URL:
            backends["postgres"] = {"SESSION_BACKEND": "sql", "DATABASE_URL": POSTGRES_URL}
        else:
            skipped.append("postgres (set DATABASE_URL)")
        if _redis_answers():
            front = stack.enter_context(running_front(UPSTASH_TOKEN, REDIS_URL))
            backends["redis"] = {"SESSION_BACKEND": "redis", "REDIS_URL": REDIS_URL}
            backends["upstash"] = {"SESSION_BACKEND": "upstash", **front.env()}
        else:
            skipped += [f"redis, upstash (no Redis at {REDIS_URL})"]
        sidecar = stack.enter_context(running_sidecar())
        backends["dapr"] = {"SESSION_BACKEND": "dapr", **sidecar.env()}

        prepared = {name: await _prepare(name, env) for name, env in backends.items()}
        results = {name: Result(name) for name in backends}
        names = list(backends)
        began = time.monotonic()
        for round_no in range(args.rounds):
            if round_no and time.monotonic() - began > args.budget:
                break
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                session = next(prepared[name][0])
                await _round(session, args.turns, limit, results[name])
        elapsed = time.monotonic() - began
        await close_clients()
        for _, engine in prepared.values():
            if engine is not None:
                await engine.dispose()

    base = results["sqlite"].rate
    rounds = len(results["sqlite"].rounds)
    print(
        f"One turn = get_items(limit={limit}) + add_items(2 items); {args.turns} turns per "
        f"round on a new thread, {rounds} rounds, {elapsed:.1f} s. Median round:"
    )
    print(f"{'backend':<10} {'turns/s':>9} {'ops/s':>9} {'p50 ms':>8} {'vs sqlite':>10}")
    for result in results.values():
        p50 = statistics.median(result.latencies) * 1000
        print(
            f"{result.name:<10} {result.rate:>9.0f} {2 * result.rate:>9.0f} {p50:>8.2f} "
            f"{result.rate / base:>9.2f}x"
        )
    print("ops/s counts get_items and add_items as one op each (2 per turn).")
    for reason in skipped:
        print(f"skipped: {reason}")


if __name__ == "__main__":
    asyncio.run(main())
