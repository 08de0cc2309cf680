"""Recovery after kill -9, with the default leases: the longest takeover against the 60 s target.

Run it with `.venv/bin/python -m bench.chaos_recovery` (DATABASE_URL set: a fresh Postgres
database on that server, dropped after; unset: two hosts on one SQLite file). Each round
starts hosts A and B (`python -m local.devhost --no-jobs`, the loopback fake model answering
after `--latency` seconds, every lease and sweep setting at its default unless passed
through `--env`), sends a burst to A (background runs, two per thread so half wait claimed
behind the other, plus synchronous runs) and, once every run is running or claimed, kills A
with SIGKILL. It then watches each run A held: its **takeover** is the time from the kill
until another executor holds it (its lease owner changed) or it ended; its **recovery** is
the time until it ended. Runs B itself held at the kill (their lease is renewed after it) are
not takeovers and are left out. B keeps serving requests meanwhile; their 5xx are counted.

Printed per round and overall: runs, kills, recoveries, the longest takeover and recovery
against the target (ASCENT_RECOVERY_SECONDS, 60 s) and the takeover bound the settings
promise (run lease + sweep interval, 45 s by default), and 5xx. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.fake_model import running_fake_model
from local.devhost_process import DevHostProcess, spawn, wait_healthy
from shared.core.settings import Settings


def _query(url: str | None, data: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())
    with sqlite3.connect(data / "ascent.db") as db:
        return list(db.execute(sql, params).fetchall())


@contextlib.contextmanager
def _database(server: str | None) -> Iterator[str | None]:
    if not server:
        yield None
        return
    from tests.fresh_database import fresh_postgres_database

    with fresh_postgres_database(server, prefix="ascent_bench_chaos") as url:
        yield url


def _start(data: Path, env: dict[str, str], key: str | None = None) -> DevHostProcess:
    extra = dict(env)
    if key:
        extra["ASCENT_DEV_API_KEY"] = key
    host = spawn(data, env=extra, extra_args=["--no-jobs"])
    if key:
        host.api_key = key
    wait_healthy(host, timeout=120)
    return host


async def _round(args: argparse.Namespace, model: str, server: str | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ascent-chaos-"))
    try:
        with _database(server) as url:
            env = {
                "ASCENT_ENV": "test",
                "MODEL_PROVIDER": "compatible",
                "OPENAI_BASE_URL": f"{model}/v1",
                "OPENAI_API_KEY": "unused",
                "ASCENT_MAX_CONCURRENT_RUNS": "0",
                "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
                "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
                **dict(pair.split("=", 1) for pair in args.env),
            }
            if url:
                env["DATABASE_URL"] = url
            data_a = root / "a"
            data_b = data_a if not url else root / "b"
            a = _start(data_a, env)
            b = _start(data_b, env, key=a.api_key if not url else None)
            try:
                return await _burst_and_kill(args, a, b, url, data_a)
            finally:
                a.stop()
                b.stop()
    finally:
        if args.keep:
            print(f"host logs kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _burst_and_kill(
    args: argparse.Namespace, a: DevHostProcess, b: DevHostProcess, url: str | None, data: Path
) -> dict[str, Any]:
    headers_a, headers_b = a.headers, b.headers
    async with (
        httpx.AsyncClient(base_url=a.base_url, headers=headers_a, timeout=600) as on_a,
        httpx.AsyncClient(base_url=b.base_url, headers=headers_b, timeout=60) as on_b,
    ):
        sync_calls = []
        for _ in range(args.sync):
            sync_calls.append(
                asyncio.ensure_future(
                    on_a.post("/agents/assistant/runs", json={"input": "hello there"})
                )
            )
        for _ in range(args.threads):
            thread = (await on_b.post("/threads", json={})).json()["thread_id"]
            for _ in range(2):
                await on_a.post(
                    f"/threads/{thread}/runs",
                    json={"input": "hello there", "multitask_strategy": "enqueue"},
                )
        total = args.sync + 2 * args.threads
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # Every run exists and was received: running, or pending under a receiver's claim.
            states = _query(
                url,
                data,
                "SELECT count(*), sum(CASE WHEN status = 'pending' AND lease_owner IS NULL "
                "THEN 1 ELSE 0 END) FROM runs",
            )
            created, unclaimed = states[0][0], states[0][1] or 0
            if created >= total and unclaimed == 0:
                break
            await asyncio.sleep(0.1)
        at_kill = _query(
            url,
            data,
            "SELECT id, lease_owner, status, lease_expires_at FROM runs "
            "WHERE status IN ('pending', 'running')",
        )
        held = {r[0]: r[1] for r in at_kill}
        expiry = {r[0]: r[3] for r in at_kill}
        # B's own holdings: their lease is renewed after the kill (A's never are again).
        of_b: set[str] = set()
        # What each run was at the kill: a request's run, a queued run running, or a pending
        # run (claimed by a receiver, or not yet received).
        kinds = {
            r[0]: "request"
            if (r[1] or "").startswith("req:")
            else f"queued-{r[2]}" + ("" if r[2] == "running" or r[1] else "-unreceived")
            for r in at_kill
        }
        killed = time.monotonic()
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait(10)
        await asyncio.gather(*sync_calls, return_exceptions=True)
        taken: dict[str, float] = {}
        ended: dict[str, float] = {}
        five_xx = 0
        limit = time.monotonic() + args.give_up
        while len(ended) + len(of_b) < len(held) and time.monotonic() < limit:
            now = time.monotonic() - killed
            for run_id, status, owner, expires in _query(
                url, data, "SELECT id, status, lease_owner, lease_expires_at FROM runs"
            ):
                if run_id not in held or run_id in of_b:
                    continue
                renewed = expires is not None and expiry[run_id] is not None
                if renewed and owner == held[run_id] and str(expires) > str(expiry[run_id]):
                    of_b.add(run_id)  # B holds it and renews it: not a takeover
                    continue
                if run_id not in taken and (
                    owner != held[run_id] or status not in ("pending", "running")
                ):
                    taken[run_id] = now
                if run_id not in ended and status not in ("pending", "running"):
                    ended[run_id] = now
            # B keeps serving while it takes over: a read answers, never 5xx.
            probe = await on_b.post("/threads/search", json={"limit": 1})
            five_xx += probe.status_code >= 500
            await asyncio.sleep(0.2)
        busy = _query(url, data, "SELECT count(*) FROM threads WHERE status = 'busy'")[0][0]
    by_kind: dict[str, float] = {}
    of_a = [r for r in held if r not in of_b]
    for run_id in of_a:
        kind = kinds[run_id]
        by_kind[kind] = round(max(by_kind.get(kind, 0.0), taken.get(run_id, float("inf"))), 2)
    return {
        "takeover_by_kind_s": by_kind,
        "runs": len(held),
        "held_by_killed_host": len(of_a),
        "kills": 1,
        "recoveries": len([r for r in of_a if r in ended]),
        "unrecovered": len([r for r in of_a if r not in ended]),
        "longest_takeover_s": round(
            max((taken.get(r, float("inf")) for r in of_a), default=0.0), 2
        ),
        "longest_recovery_s": round(
            max((ended.get(r, float("inf")) for r in of_a), default=0.0), 2
        ),
        "threads_still_busy": busy,
        "five_xx": five_xx,
    }


def _longest(times: dict[str, float], run_ids: list[str]) -> float:
    """The latest of the runs' times (inf: one never got there)."""
    return round(max((times.get(r, float("inf")) for r in run_ids), default=0.0), 2)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print each round's figures and the overall worst."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos_recovery", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=20, help="background threads (2 runs each)")
    parser.add_argument("--sync", type=int, default=10, help="synchronous runs in flight")
    parser.add_argument("--latency", type=float, default=10.0, help="model answer time (s)")
    parser.add_argument(
        "--give-up", type=float, default=180.0, help="seconds to watch after the kill"
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both hosts")
    parser.add_argument("--keep", action="store_true", help="keep the hosts' data dirs and logs")
    args = parser.parse_args(argv)
    settings = Settings(**dict(pair.split("=", 1) for pair in args.env))  # type: ignore[arg-type]
    server = os.environ.get("DATABASE_URL") or None
    results = []
    with running_fake_model(latency=args.latency) as model:
        for number in range(1, args.rounds + 1):
            figures = asyncio.run(_round(args, model, server))
            results.append(figures)
            print(f"round {number}: {json.dumps(figures)}", flush=True)
    worst_takeover = max(r["longest_takeover_s"] for r in results)
    worst_recovery = max(r["longest_recovery_s"] for r in results)
    summary = {
        "database": "postgres" if server else "sqlite",
        "rounds": len(results),
        "runs": sum(r["runs"] for r in results),
        "kills": sum(r["kills"] for r in results),
        "recoveries": sum(r["recoveries"] for r in results),
        "unrecovered": sum(r["unrecovered"] for r in results),
        "longest_takeover_s": worst_takeover,
        "longest_recovery_s": worst_recovery,
        "takeover_bound_s": settings.takeover_bound_seconds,
        "target_s": settings.recovery_seconds,
        "five_xx": sum(r["five_xx"] for r in results),
        "model_latency_s": args.latency,
    }
    print(f"summary: {json.dumps(summary)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
