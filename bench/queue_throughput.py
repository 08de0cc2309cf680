"""Queue throughput: background runs/s end to end through each queue backend, against sync runs.

Run it with `.venv/bin/python -m bench.queue_throughput`. It starts one dev host per queue
backend (`python -m local.devhost --no-jobs`, SQLite in a temporary data dir, the offline model,
a free port, rate limits off) and, on each, measures side by side:

- **background**: `POST /api/runs {"agent_id": "assistant", "input": ...}` answers at once
  with a `pending` run; the dispatcher (shared/runs/dispatch.py) puts a message on `agent-runs`,
  the dev host's queue driver (local/queue_host.py) receives it and runs the
  queue-triggered function, which executes the run; the client then waits until the run is
  visible as `success` (`GET /api/runs/{id}/wait` by default, woken when the run ends: on one
  dev host the run executes in the same process, so the wake is in-process (shared/runs/
  watch.py; other instances would hear through LISTEN/NOTIFY or Redis, or poll every
  ASCENT_RUN_POLL_SECONDS where neither exists); or `--poll-interval S`: the client polls
  `GET /api/runs/{id}`). A run counts when its success is visible to the client, so each
  figure is the whole path: accept, enqueue, receive, execute, settle, observe.
- **sync**: the same count of runs through `POST /api/agents/assistant/runs` (a new thread per
  run, executed inside the request), on the same host, for scale.

The backends: `embedded` (QUEUE_BACKEND=embedded, the default: the SQL-table queue in the same
SQLite file) and `azure` (QUEUE_BACKEND=azure with AzureWebJobsStorage pointing at an Azurite
queue service this bench starts on a free port with a temporary location; skipped with a note
when Azurite is not installed: `npm install --no-save azurite@3.35.0`).

Each load is RUNS runs (default 200) from CONCURRENCY closed-loop workers (default 16: a
worker starts its next run when its previous one is visibly done), capped at
MAX_LOAD_SECONDS; rounds alternate background and sync so drift on a shared machine hits
both, and the median round is reported with the ratio background / sync per backend. The
whole bench keeps to a time budget (default 130 s of loads, < 2.5 min in all): a round that
would start after it is skipped. Nothing about timing is asserted; failed runs are counted
and shown next to their figure; a load with more than 10 % failures aborts. Compare ratios,
and absolute figures only within one run: the client shares the machine with the host (and
Azurite), and with `--poll-interval` the background figures include the client's polling
granularity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.turn_overhead import (
    AGENT,
    PROMPT,
    Host,
    Load,
    RunFailed,
    _errors,
    _rate,
    _row,
    drive,
    http_client,
    median,
    post_run,
    running_host,
)
from tests.queue_support import AZURITE, azurite

RUNS = 200
CONCURRENCY = 16
ROUNDS = 2
MAX_LOAD_SECONDS = 10.0
# A run not visibly done this long after its POST counts as failed (keeps a load bounded).
RUN_TIMEOUT = 15.0
BUDGET_SECONDS = 130.0
TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})

# Throughput, not cron jobs: no scheduled job competes with the load. (bench.turn_overhead's
# spawn_host already turns the rate and concurrency limits off: ASCENT_*_PER_MINUTE=0 etc.)
HOST_ARGS = ("--no-jobs",)


@dataclass
class BackendResult:
    """The loads of one queue backend's host, or why it was skipped."""

    name: str
    label: str
    background: list[Load] = field(default_factory=list)
    sync: list[Load] = field(default_factory=list)
    skipped: str | None = None


def _guarded(
    one: Callable[[httpx.AsyncClient], Awaitable[None]], client: httpx.AsyncClient
) -> Callable[[int], Awaitable[None]]:
    """`one` with a per-run deadline; transport errors and timeouts count as failed runs."""

    async def run(_: int) -> None:
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                await one(client)
        except TimeoutError:
            raise RunFailed(f"not visibly done after {RUN_TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            raise RunFailed(f"{type(exc).__name__}: {exc}") from None

    return run


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise RunFailed(f"{what}: HTTP {response.status_code} {response.text[:200]}")
    data: dict[str, Any] = response.json()
    return data


def background_run(poll_interval: float) -> Callable[[httpx.AsyncClient], Awaitable[None]]:
    """POST /runs, then wait (server-side /wait, or client polling) until it succeeded."""

    async def one(client: httpx.AsyncClient) -> None:
        created = _json(
            await client.post("/runs", json={"agent_id": AGENT, "input": PROMPT}), "POST /runs"
        )
        run_id = created["run_id"]
        if poll_interval <= 0:
            run = _json(await client.get(f"/runs/{run_id}/wait"), "GET /runs/{id}/wait")["run"]
        else:
            run = created
            while run.get("status") not in TERMINAL:
                await asyncio.sleep(poll_interval)
                run = _json(await client.get(f"/runs/{run_id}"), "GET /runs/{id}")
        if run.get("status") != "success":
            raise RunFailed(f"background run {run.get('status')}: {str(run.get('error'))[:200]}")

    return one


async def sync_run(client: httpx.AsyncClient) -> None:
    """One run through the synchronous endpoint (new thread), as bench.turn_overhead does."""
    await post_run(client, {"input": PROMPT})


async def measure(host: Host, result: BackendResult, args: argparse.Namespace, end: float) -> None:
    """Warm both paths, then alternate background and sync loads while the budget lasts."""
    async with http_client(host, args.concurrency) as client:
        background = _guarded(background_run(args.poll_interval), client)
        sync = _guarded(sync_run, client)
        warm = 2 * args.concurrency
        await drive(warm, args.concurrency, background, max_seconds=args.max_load_seconds)
        await drive(warm, args.concurrency, sync, max_seconds=args.max_load_seconds)
        for _ in range(args.rounds):
            for loads, one in ((result.background, background), (result.sync, sync)):
                left = end - time.perf_counter()
                if left < 1.0:
                    return
                cap = min(args.max_load_seconds, left)
                loads.append(await drive(args.runs, args.concurrency, one, max_seconds=cap))


def run_backend(
    result: BackendResult,
    work: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    end: float,
) -> None:
    """Start a dev host with the backend's environment, measure, stop it (also on error)."""
    print(f"measuring {result.label} ...", flush=True)
    with running_host(work / result.name, extra_env=env, extra_args=HOST_ARGS) as host:
        try:
            asyncio.run(measure(host, result, args, end))
        except Exception as exc:
            raise RuntimeError(
                f"{result.label}: measurement failed; dev host log:\n{host.log_tail()}"
            ) from exc


def _p50(loads: list[Load]) -> str:
    values = [x for load in loads for x in load.latencies]
    if not values:
        return "-"
    return f"{Load(len(values), 1.0, values).percentile_ms(50):.0f} ms"


def report(args: argparse.Namespace, results: list[BackendResult], total: float) -> None:
    """One block per backend: background and sync runs/s (median round), ratio, p50 latency."""
    wait = (
        "GET /runs/{id}/wait"
        if args.poll_interval <= 0
        else f"polling every {args.poll_interval:g} s"
    )
    print()
    print(
        f"Queue throughput: agent {AGENT!r}, offline model, SQLite; {args.runs} runs at "
        f"concurrency {args.concurrency} x {args.rounds} alternating rounds; background waits "
        f"by {wait}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    rates: dict[str, float] = {}
    for r in results:
        print(f"\n{r.label}")
        if r.skipped:
            print(f"  skipped: {r.skipped}")
            continue
        if not r.background or not r.sync:
            print("  no complete round within the time budget")
            continue
        bg = median([load.rate for load in r.background])
        sy = median([load.rate for load in r.sync])
        rates[r.name] = bg
        bg_rounds = " ".join(_rate(load) for load in r.background)
        sy_rounds = " ".join(_rate(load) for load in r.sync)
        _row(
            "background (POST /runs -> success visible)",
            f"{bg:.1f} runs/s",
            f"rounds: {bg_rounds}; p50 {_p50(r.background)}{_errors(*r.background)}",
        )
        _row(
            "sync (POST /agents/assistant/runs)",
            f"{sy:.1f} runs/s",
            f"rounds: {sy_rounds}; p50 {_p50(r.sync)}{_errors(*r.sync)}",
        )
        _row("ratio background / sync", f"{bg / sy:.3f}")
    if "embedded" in rates and "azure" in rates:
        print()
        _row("background azure / embedded", f"{rates['azure'] / rates['embedded']:.3f}")
    print(
        f"\n* a load cut short after {args.max_load_seconds:g} s or by the budget "
        "(rate = completed runs / time)"
    )
    print(f"whole bench: {total:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.queue_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per load")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    parser.add_argument("--max-load-seconds", type=float, default=MAX_LOAD_SECONDS)
    parser.add_argument(
        "--budget", type=float, default=BUDGET_SECONDS, help="seconds for all hosts and loads"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.0,
        help="poll GET /runs/{id} this often instead of GET /runs/{id}/wait (0: /wait)",
    )
    parser.add_argument(
        "--backends", default="embedded,azure", help="comma-separated: embedded, azure"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="use and keep this work dir (host logs, DBs)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = set(names) - {"embedded", "azure"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    end = started + args.budget
    results: list[BackendResult] = []
    with tempfile.TemporaryDirectory(prefix="ascent-bench-queue-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        for name in names:
            if name == "embedded":
                result = BackendResult(name, "embedded queue (SQL table, QUEUE_BACKEND=embedded)")
                results.append(result)
                run_backend(result, work, {"QUEUE_BACKEND": "embedded"}, args, end)
                continue
            result = BackendResult(name, "Azure Storage Queue on Azurite (QUEUE_BACKEND=azure)")
            results.append(result)
            if not AZURITE.exists() or shutil.which("node") is None:
                result.skipped = "Azurite not installed: npm install --no-save azurite@3.35.0"
                continue
            with azurite(work / "azurite") as connection:
                env = {"QUEUE_BACKEND": "azure", "AzureWebJobsStorage": connection}
                run_backend(result, work, env, args, end)
    report(args, results, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
