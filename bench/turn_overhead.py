"""Turn overhead: what the HTTP API, its database and its process cost on top of the Agents SDK.

Run it with `.venv/bin/python -m bench.turn_overhead` (or `make bench`). Everything uses the
offline model, so no figure includes model latency: what is left is Ascent's own overhead. It
measures, side by side in one run:

1. **Throughput, concurrency 16.** The same count of runs of the catalog's `assistant` agent
   (a greeting the offline model answers directly: one model call, no tool), first
   in-process, `Runner.run(agent, input, run_config=RunConfig(OfflineModelProvider(), ...))`
   with no session, then through a dev host (`POST /api/agents/assistant/runs`, a new thread
   per run). The HTTP path is the run engine's `run_here` (shared/runs/service.py): no queue;
   the run executes on the instance that received the request. Per run: the auth query; ONE
   batched writer transaction (shared/db/direct.py, group commit) creating the thread and the
   run, claimed and leased; the thread's history read (none for a new thread) and the agent
   run, its events pushed to in-process subscribers and stored in the background as units of
   the same writer (grouped into its transactions with other runs' units); ONE batched writer
   transaction finishing it (status, answer, usage, closing events, the turn's history, the
   thread freed, the terminal CloudEvent); JSON, uvicorn, plus the httpx client in this
   process. Rounds alternate in-process and HTTP so that drift on a shared machine hits both;
   the median round of each is reported, with the ratio HTTP / in-process (target >= 0.5).
2. **Latency, concurrency 1**, through the dev host: p50 and p95 of a new-thread run
   (target p50 <= 10 ms), the in-process p50 shown beside it for scale.
3. **Cold start**: from spawning `python -m local.devhost` on an empty data dir (schema
   creation included) to the first successful run (poll `/api/health`, then one POST), against
   `python -c "import agents"`. Each is repeated and the median taken; ratio target <= 1.5.
4. **Thread continuation**: HTTP runs/s when every run continues one of 16 threads, so the
   history the run reads at its start (and the offline model reads) grows with each turn; the mean
   latency of the first and last turns shows what a longer history costs.

How to read it: the machines this runs on are shared and noisy, so absolute figures move
from run to run; compare the ratios, and compare figures only within one run. The benchmark
asserts nothing about timing. Each load stops after MAX_LOAD_SECONDS (its rate is completed
runs / elapsed time, marked `*`), so the whole bench stays under three minutes. Failed runs
are counted and printed next to their figure (they are findings, e.g. SQLite's "database is
locked" under concurrency); only a load with more than 10 % failures aborts. The client runs
in this process and shares the CPUs with the server, so HTTP figures are a slight
underestimate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local.devhost_process import DevHostProcess, spawn, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
AGENT = "assistant"
# No digits, no time zone, no card number: the offline model answers in one call, no tool.
PROMPT = "Hello there, how are you today?"

TARGET_RATIO = 0.5
TARGET_P50_MS = 10.0
TARGET_COLD_RATIO = 1.5


# --------------------------------------------------------------------------------------------
# The dev host process
# --------------------------------------------------------------------------------------------


Host = DevHostProcess  # the launcher shared with tests/conftest.py


def spawn_host(
    data_dir: Path,
    *,
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Host:
    """Start `python -m local.devhost` on a free port with its own data dir (not yet healthy).

    `extra_env` is added to the host's environment last; `extra_args` to its command line.
    """
    env = {
        "ASCENT_ENV": "dev",
        "MODEL_PROVIDER": "offline",
        # The bench measures overhead, not admission control: lift per-tenant/per-key limits.
        "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
        "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
        "ASCENT_MAX_CONCURRENT_RUNS": "0",
        "ASCENT_TOKENS_PER_DAY": "0",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return spawn(data_dir, env=env, extra_args=extra_args)


@contextmanager
def running_host(
    data_dir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[Host]:
    """A healthy dev host for the duration of the block, stopped afterwards whatever happens."""
    host = spawn_host(data_dir, extra_env=extra_env, extra_args=extra_args)
    try:
        wait_healthy(host)
        yield host
    finally:
        host.stop()


# --------------------------------------------------------------------------------------------
# Measurement helpers
# --------------------------------------------------------------------------------------------


class RunFailed(RuntimeError):
    """A run answered with an error: counted and reported, not fatal, unless too many fail."""


# A load with more failed runs than this fraction measures the failures, not the runs: abort.
MAX_ERROR_FRACTION = 0.1


@dataclass(frozen=True)
class Load:
    """The outcome of one load: successful runs, time taken, their latencies, the failures."""

    runs: int
    seconds: float
    latencies: list[float]
    errors: list[str] = field(default_factory=list)
    cut_short: bool = False

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000


# No single load runs longer than this: on a loaded machine a load stops early, and its rate
# is still completed runs / elapsed time (the report says when a load was cut short).
MAX_LOAD_SECONDS = 12.0


async def drive(
    count: int,
    concurrency: int,
    one: Callable[[int], Awaitable[None]],
    max_seconds: float = MAX_LOAD_SECONDS,
) -> Load:
    """Run `one(i)` for i < count from `concurrency` gathered workers, for at most max_seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                await one(i)
            except RunFailed as exc:
                errors.append(str(exc))
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if len(errors) > MAX_ERROR_FRACTION * next_index:
        raise RuntimeError(f"{len(errors)} of {next_index} runs failed, e.g. {errors[0]}")
    return Load(len(latencies), seconds, latencies, errors, cut_short=next_index < count)


def in_process_runner() -> Callable[[int], Awaitable[None]]:
    """One in-process run of the catalog agent with the offline model, no session, no trace."""
    from agents import RunConfig, Runner

    from shared.agents import get_agent
    from shared.platform.offline_model import OfflineModelProvider

    agent = get_agent(AGENT)

    async def one(_: int) -> None:
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        result = await Runner.run(agent, PROMPT, run_config=config)
        if not result.final_output:
            raise RuntimeError("in-process run produced no output")

    return one


async def post_run(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST one run and return its JSON; raise when it did not succeed."""
    response = await client.post(f"/agents/{AGENT}/runs", json=body)
    if response.status_code != 200:
        raise RunFailed(f"HTTP {response.status_code} {response.text[:200]}")
    data: dict[str, Any] = response.json()
    if data.get("status") != "success":
        raise RunFailed(f"run did not succeed: {str(data)[:200]}")
    return data


def http_client(host: Host, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=host.base_url, headers=host.headers, timeout=30.0, limits=limits
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------------------------
# The four measurements
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    in_process: list[Load]
    http: list[Load]


async def measure_throughput(host: Host, runs: int, concurrency: int, rounds: int) -> Throughput:
    """Alternate in-process and HTTP loads of `runs` runs each, `rounds` times."""
    in_process = in_process_runner()
    in_loads: list[Load] = []
    http_loads: list[Load] = []
    async with http_client(host, concurrency) as client:

        async def http_one(_: int) -> None:
            await post_run(client, {"input": PROMPT})

        # Warm both paths: imports, agent build, connection pools, SQLite pages.
        await drive(2 * concurrency, concurrency, in_process)
        await drive(2 * concurrency, concurrency, http_one)
        for _ in range(rounds):
            in_loads.append(await drive(runs, concurrency, in_process))
            http_loads.append(await drive(runs, concurrency, http_one))
    return Throughput(in_loads, http_loads)


async def measure_latency(host: Host, runs: int) -> tuple[Load, Load]:
    """Concurrency-1 latency of new-thread HTTP runs, and of in-process runs for scale."""
    in_process = in_process_runner()
    async with http_client(host, 1) as client:

        async def http_one(_: int) -> None:
            await post_run(client, {"input": PROMPT})

        await drive(10, 1, http_one)
        http = await drive(runs, 1, http_one)
    await drive(10, 1, in_process)
    return http, await drive(runs, 1, in_process)


@dataclass(frozen=True)
class Continuation:
    load: Load
    turns: int
    first_turns_ms: float
    last_turns_ms: float


async def measure_continuation(host: Host, runs: int, concurrency: int) -> Continuation:
    """HTTP runs continuing `concurrency` threads, one worker per thread, so each history grows."""
    turns = max(1, runs // concurrency)
    by_turn: list[list[float]] = [[] for _ in range(turns)]
    errors: list[str] = []
    async with http_client(host, concurrency) as client:

        async def worker() -> None:
            thread_id: str | None = None
            while thread_id is None:  # the run that creates the thread may fail too
                try:
                    thread_id = (await post_run(client, {"input": PROMPT}))["thread_id"]
                except RunFailed as exc:
                    errors.append(str(exc))
                    if len(errors) > MAX_ERROR_FRACTION * turns * concurrency:
                        raise
            for turn in range(turns):
                if time.perf_counter() > deadline:
                    break
                started = time.perf_counter()
                try:
                    await post_run(client, {"input": PROMPT, "thread_id": thread_id})
                except RunFailed as exc:
                    errors.append(str(exc))
                    continue
                by_turn[turn].append(time.perf_counter() - started)

        started = time.perf_counter()
        deadline = started + 2 * MAX_LOAD_SECONDS
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    by_turn = [turn for turn in by_turn if turn]
    if len(errors) > MAX_ERROR_FRACTION * turns * concurrency:
        raise RuntimeError(f"{len(errors)} continuation runs failed, e.g. {errors[0]}")
    # The first run of each worker creates its thread: count it, it is a run too.
    latencies = [x for t in by_turn for x in t]
    load = Load(len(latencies) + concurrency, seconds, latencies, errors, len(by_turn) < turns)
    turns = len(by_turn)
    window = max(1, turns // 10)
    first = statistics.mean(x for turn in by_turn[:window] for x in turn) * 1000
    last = statistics.mean(x for turn in by_turn[-window:] for x in turn) * 1000
    return Continuation(load, turns, first, last)


@dataclass(frozen=True)
class ColdStart:
    import_agents: list[float]
    to_health: list[float]
    to_first_run: list[float]


def measure_cold_start(work: Path, repeats: int) -> ColdStart:
    """Spawn → healthy → first run on an empty data dir, and `python -c "import agents"`."""
    imports: list[float] = []
    health: list[float] = []
    first: list[float] = []
    for attempt in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import agents"], cwd=ROOT, check=True)
        imports.append(time.perf_counter() - started)

        started = time.perf_counter()
        host = spawn_host(work / f"cold-{attempt}")
        try:
            wait_healthy(host, poll=0.01)
            health.append(time.perf_counter() - started)
            with httpx.Client(base_url=host.base_url, headers=host.headers, timeout=30) as c:
                response = c.post(f"/agents/{AGENT}/runs", json={"input": PROMPT})
                if response.status_code != 200:
                    raise RuntimeError(
                        f"first run failed: {response.status_code} {response.text[:300]}\n"
                        f"{host.log_tail()}"
                    )
            first.append(time.perf_counter() - started)
        finally:
            host.stop()
    return ColdStart(imports, health, first)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>15}  {note}".rstrip())


def _errors(*loads: Load) -> str:
    failed = sum(len(load.errors) for load in loads)
    if not failed:
        return ""
    sample = next(error for load in loads for error in load.errors)
    return f"  [{failed} FAILED runs, e.g. {sample[:120]}]"


def _rate(load: Load) -> str:
    return f"{load.rate:.0f}" + ("*" if load.cut_short else "")


def _ms_list(values: list[float]) -> str:
    return "runs: " + " ".join(f"{v * 1e3:.0f}" for v in values)


def report(
    args: argparse.Namespace,
    throughput: Throughput,
    latency: tuple[Load, Load],
    continuation: Continuation | None,
    cold: ColdStart,
    total: float,
) -> None:
    """Print every figure, its target where the issue sets one, and any failed runs."""
    in_rate = median([load.rate for load in throughput.in_process])
    http_rate = median([load.rate for load in throughput.http])
    print()
    print(
        f"Turn overhead: agent {AGENT!r}, offline model, SQLite; {args.runs} runs x "
        f"{args.rounds} alternating rounds; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )

    print(f"\n1. Throughput at concurrency {args.concurrency} (median round)")
    rounds_in = " ".join(_rate(load) for load in throughput.in_process)
    rounds_http = " ".join(_rate(load) for load in throughput.http)
    _row("in-process Runner.run", f"{in_rate:.1f} runs/s", f"rounds: {rounds_in}")
    _row(
        "HTTP, new thread per run (SQLite)",
        f"{http_rate:.1f} runs/s",
        f"rounds: {rounds_http}{_errors(*throughput.http)}",
    )
    _row("ratio HTTP / in-process", f"{http_rate / in_rate:.3f}", f"target >= {TARGET_RATIO}")
    _row("extra time per run (1/http - 1/in)", f"{(1 / http_rate - 1 / in_rate) * 1e3:.2f} ms")

    http_lat, in_lat = latency
    print(f"\n2. Latency at concurrency 1 ({len(http_lat.latencies)} HTTP runs)")
    p50 = http_lat.percentile_ms(50)
    _row("HTTP p50", f"{p50:.2f} ms", f"target <= {TARGET_P50_MS:g} ms{_errors(http_lat)}")
    _row("HTTP p95", f"{http_lat.percentile_ms(95):.2f} ms")
    _row("in-process p50 (for scale)", f"{in_lat.percentile_ms(50):.2f} ms")
    _row("in-process p95", f"{in_lat.percentile_ms(95):.2f} ms")

    imports = median(cold.import_agents)
    to_health = median(cold.to_health)
    to_run = median(cold.to_first_run)
    print(f"\n3. Cold start (median of {len(cold.import_agents)}; empty data dir each time)")
    _row('python -c "import agents"', f"{imports * 1e3:.0f} ms", _ms_list(cold.import_agents))
    _row("dev host spawn -> /health 200", f"{to_health * 1e3:.0f} ms", _ms_list(cold.to_health))
    _row("dev host spawn -> first run", f"{to_run * 1e3:.0f} ms", _ms_list(cold.to_first_run))
    _row(
        "ratio first run / import agents",
        f"{to_run / imports:.3f}",
        f"target <= {TARGET_COLD_RATIO}",
    )

    if continuation is not None:
        c = continuation
        print(f"\n4. Continuing threads, concurrency {args.concurrency} ({c.turns} turns each)")
        _row("HTTP, existing thread per run", f"{_rate(c.load)} runs/s", _errors(c.load))
        _row("ratio to new thread per run", f"{c.load.rate / http_rate:.3f}")
        _row("mean latency, first 10% of turns", f"{c.first_turns_ms:.2f} ms")
        _row("mean latency, last 10% of turns", f"{c.last_turns_ms:.2f} ms")
    print(f"\n* a load cut short after {MAX_LOAD_SECONDS:g} s (rate = completed runs / time)")
    print(f"whole bench: {total:.1f} s")


async def _measure_hot(
    host: Host, args: argparse.Namespace
) -> tuple[Throughput, tuple[Load, Load], Continuation | None]:
    throughput = await measure_throughput(host, args.runs, args.concurrency, args.rounds)
    latency = await measure_latency(host, args.latency_runs)
    continuation = None
    if args.thread_runs > 0:
        continuation = await measure_continuation(host, args.thread_runs, args.concurrency)
    return throughput, latency, continuation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.turn_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=800, help="runs per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--thread-runs", type=int, default=480, help="0 skips measurement 4")
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, default=None, help="use and keep this work dir (host logs, DBs)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ascent-bench-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        print("measuring cold start ...", flush=True)
        cold = measure_cold_start(work, args.cold_repeats)
        print("measuring throughput, latency and continuation ...", flush=True)
        with running_host(work / "hot") as host:
            try:
                throughput, latency, continuation = asyncio.run(_measure_hot(host, args))
            except Exception as exc:
                raise RuntimeError(f"measurement failed; dev host log:\n{host.log_tail()}") from exc
    report(args, throughput, latency, continuation, cold, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
