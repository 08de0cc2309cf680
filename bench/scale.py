"""Scale: 1,000 concurrent runs on a model that takes 1 s to answer, served by one host.

Run it with `.venv/bin/python -m bench.scale` (`--help` for counts, latency, timeouts). It
starts a loopback OpenAI-compatible fake model (bench/fake_model.py: a fixed answer after
`--latency` seconds, default 1.0) and one dev host (`python -m local.devhost --no-jobs`, SQLite
in a temporary data dir unless `--database-url`, rate and concurrency limits off, and
`MODEL_PROVIDER=compatible`, `OPENAI_BASE_URL=<fake model>/v1`, `OPENAI_API_KEY=unused`,
`ASCENT_MAX_IN_FLIGHT_RUNS=<runs>`). After a warm-up of a few runs of each kind it measures:

0. **SDK alone** (printed last): `--runs` concurrent `Runner.run_streamed` of the same agent and
   input in a process of their own (bench/sdk_floor.py), through Ascent's model seam and the
   same fake model, no host: what one Python process does with the SDK and nothing else, the
   floor for the sync phase. The sync and background walls are printed as ratios to it.
1. **client floor**: `--runs` concurrent chat completions sent by this process straight to the
   fake model with the same HTTP clients as the phases below. No host is involved: it is the
   best wall time the phases can show on this machine (model latency + the client's own cost).
2. **sync**: `--runs` concurrent `POST /api/agents/assistant/runs {"input": ...}` (a new
   thread each, the run executed inside the request), all started at once; wall time from
   the first request sent to the last answer received, and p50/p95 of each request's latency.
3. **background**: `--runs` concurrent `POST /api/runs {"agent_id": "assistant", "input":
   ...}` (Agent Protocol background runs: persisted `pending`, executed from the embedded
   queue), each followed at once by `GET /api/runs/{id}/wait` (re-issued if it comes back
   before the run ended); wall time from the first POST to the last run seen ended, final
   statuses counted, latency POST -> end seen. A waiter on the host that executes the run is
   woken in-process when the run ends (shared/runs/watch.py): no query per waiter. `--observe poll`
   polls `GET /api/runs/{id}` per run every `--poll-interval` instead; `--observe search` has
   one watcher ask `POST /api/runs/search` whether any run is still pending or running (two
   small requests per interval), then reads each run once to count statuses and take its
   end (`updated_at`) and latency: the host's queue capacity without the cost of waiters.

For each phase the table shows runs, ok, failed (an HTTP error, a transport error, a run not
`success`, or not finished when the phase's `--phase-timeout` cut it short: `*` on its wall
time), wall seconds, runs/s (ok / wall), p50/p95 latency, the dev host's RSS growth (VmRSS of
its process sampled every 50 ms during the phase, peak minus the value just before it) and
the most model calls the fake model saw in flight at once. Next to them are the targets: all
runs done within 5 s of wall time (one model latency plus headroom), and RSS growth <= 300 MB.
The first few distinct errors, the model's counters and the warnings and errors the host
logged are printed below the table.

How to read it: with a 1 s model, a host that runs everything concurrently finishes each
phase in a little over 1 s plus the client floor's overhead; "max concurrent model calls" far
below `--runs` shows where runs queue (admission, a worker pool, a queue batch, a connection
pool). The client runs in this process and shares the CPUs with the host and the fake model,
so on a small machine all figures are pessimistic: compare against the client floor. Nothing
about timing is asserted; the exit status is non-zero only if the host died (or could not
start). The load is spread over several HTTP clients of `--connections-per-client`
connections each, because one httpx client's connection pool costs time quadratic in its
waiting requests: 1,000 requests through one pool take ~20 s on 2 CPUs whatever the server
(`--connections-per-client 0` uses one client anyway). Each phase opens new clients, so new
connections (a kept-alive one from an earlier phase may be closed by the host just as a
request goes out on it). Each phase is capped at
`--phase-timeout` (default 60 s) and the host and model are given up to 15 s to settle between
phases, so the whole bench stays under ~3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fake_model import running_fake_model
from bench.fake_model import stats as model_stats
from bench.turn_overhead import AGENT, PROMPT, Host, spawn_host
from local.devhost_process import wait_healthy

TARGET_WALL_S = 5.0
TARGET_RSS_MB = 300.0
TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})
SAMPLE_SECONDS = 0.05
SETTLE_SECONDS = 15.0
REQUEST_TIMEOUT = 120.0
WARM_RUNS = 8
MAX_ERRORS_SHOWN = 4


# --------------------------------------------------------------------------------------------
# The host, its memory, the clients
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def scale_host(
    data_dir: Path, model_url: str, runs: int, database_url: str | None
) -> Iterator[Host]:
    """A healthy dev host on the fake model, jobs off, for the block; stopped afterwards."""
    env = {
        "MODEL_PROVIDER": "compatible",
        "OPENAI_BASE_URL": f"{model_url}/v1",
        "OPENAI_API_KEY": "unused",
        "ASCENT_MAX_IN_FLIGHT_RUNS": str(runs),
    }
    host = spawn_host(data_dir, database_url=database_url, extra_env=env, extra_args=["--no-jobs"])
    try:
        wait_healthy(host)
        yield host
    finally:
        host.stop()


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB, or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class RssSampler:
    """Samples a process's RSS every SAMPLE_SECONDS in a thread, for the duration of a block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_mb(pid) or 0.0
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            value = rss_mb(self.pid)
            if value is None:
                return
            self.peak = max(self.peak, value)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid) or 0.0)

    @property
    def growth(self) -> float:
        return self.peak - self.before


class Clients:
    """The load's HTTP clients: `runs` connections spread over clients of `per_client` each."""

    def __init__(
        self, base_url: str, headers: dict[str, str], connections: int, per_client: int
    ) -> None:
        per_client = per_client if per_client > 0 else connections
        count = max(1, -(-connections // per_client))
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
            )
            for _ in range(count)
        ]

    def __getitem__(self, i: int) -> httpx.AsyncClient:
        return self.clients[i % len(self.clients)]

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------


class Failed(Exception):
    """One run that did not succeed; its message is the error shown (grouped by it)."""


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    runs: int
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    cut_short: bool = False
    unfinished: int = 0
    rss_before: float = 0.0
    rss_growth: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)
    host_left: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.runs - self.ok

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def run_phase(phase: Phase, one: Callable[[int], Awaitable[None]], cap: float) -> None:
    """Start `one(i)` for every run at once; record successes, errors and the wall time."""
    ends: list[float] = []

    async def timed(i: int) -> None:
        started = time.perf_counter()
        try:
            await one(i)
        except Failed as exc:
            phase.errors[str(exc)] += 1
        except httpx.HTTPError as exc:
            phase.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
        else:
            phase.ok += 1
            phase.latencies.append(time.perf_counter() - started)
        ends.append(time.perf_counter())

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(timed(i)) for i in range(phase.runs)]
    _, pending = await asyncio.wait(tasks, timeout=cap)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    phase.unfinished = len(pending)
    if pending:
        phase.cut_short = True
        phase.errors[f"not finished after the phase timeout of {cap:g} s"] += len(pending)
        phase.statuses["unfinished"] += len(pending)
        phase.wall = cap
    else:
        phase.wall = max(ends) - started


def _body(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 200 answer; Failed (status and body) otherwise."""
    data: dict[str, Any] = _ok(response, what)
    return data


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise Failed(f"{what}: HTTP {response.status_code} {response.text[:160]}")
    return response.json()


def floor_one(clients: Clients) -> Callable[[int], Awaitable[None]]:
    """A chat completion straight to the fake model (the client floor)."""
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": PROMPT}]}

    async def one(i: int) -> None:
        _body(await clients[i].post("/v1/chat/completions", json=body), "POST /v1/chat/completions")

    return one


def sync_one(clients: Clients, phase: Phase) -> Callable[[int], Awaitable[None]]:
    """POST /agents/assistant/runs: the run executes inside the request."""

    async def one(i: int) -> None:
        response = await clients[i].post(f"/agents/{AGENT}/runs", json={"input": PROMPT})
        data = _body(response, f"POST /agents/{AGENT}/runs")
        status = str(data.get("status"))
        phase.statuses[status] += 1
        if status != "success":
            raise Failed(f"run {status}: {str(data.get('error'))[:160]}")

    return one


def background_one(clients: Clients, phase: Phase, poll: float) -> Callable[[int], Awaitable[None]]:
    """POST /runs, then GET /runs/{id}/wait (poll = 0) or poll GET /runs/{id} until it ended."""

    async def one(i: int) -> None:
        client = clients[i]
        try:
            run = _body(
                await client.post("/runs", json={"agent_id": AGENT, "input": PROMPT}),
                "POST /runs",
            )
        except (Failed, httpx.HTTPError):
            phase.statuses["POST failed"] += 1
            raise
        run_id = run["run_id"]
        while run.get("status") not in TERMINAL:
            if poll > 0:
                await asyncio.sleep(poll)
                run = _body(await client.get(f"/runs/{run_id}"), "GET /runs/{id}")
            else:
                run = _body(await client.get(f"/runs/{run_id}/wait"), "GET /runs/{id}/wait")["run"]
        status = str(run.get("status"))
        phase.statuses[status] += 1
        if status != "success":
            raise Failed(f"run {status}: {str(run.get('error'))[:160]}")

    return one


async def background_search_phase(
    phase: Phase, clients: Clients, host: Host, cap: float, interval: float
) -> None:
    """POST every run at once, then watch POST /runs/search until none is pending or running.

    The waiting costs the host two small queries per interval instead of one per run; each
    run's end is its `updated_at` (read once all ended, outside the timed window).
    """
    posted: dict[str, float] = {}  # run_id -> wall-clock time its POST was sent

    async def post(i: int) -> None:
        sent = time.time()
        try:
            run = _body(
                await clients[i].post("/runs", json={"agent_id": AGENT, "input": PROMPT}),
                "POST /runs",
            )
        except Failed as exc:
            phase.statuses["POST failed"] += 1
            phase.errors[str(exc)] += 1
            return
        except httpx.HTTPError as exc:
            phase.statuses["POST failed"] += 1
            phase.errors[f"POST /runs: {type(exc).__name__}: {str(exc)[:120]}"] += 1
            return
        posted[str(run["run_id"])] = sent

    started_wall, started = time.time(), time.perf_counter()
    deadline = started + cap
    tasks = [asyncio.ensure_future(post(i)) for i in range(phase.runs)]
    _, pending = await asyncio.wait(tasks, timeout=cap)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        phase.statuses["POST unanswered"] += len(pending)
        phase.errors["POST /runs not answered within the phase timeout"] += len(pending)
    ended = False
    async with httpx.AsyncClient(base_url=host.base_url, headers=host.headers, timeout=30) as c:
        while True:
            left = 0
            try:
                for status in ("pending", "running"):
                    response = await c.post("/runs/search", json={"status": status, "limit": 1})
                    left += len(_ok(response, "POST /runs/search"))
            except (Failed, httpx.HTTPError) as exc:
                phase.errors[f"watcher: {type(exc).__name__}: {str(exc)[:120]}"] += 1
                left = 1
            if not left:
                ended = True
                break
            if time.perf_counter() >= deadline or host.process.poll() is not None:
                break
            await asyncio.sleep(interval)
    # Each run's final state, outside the timed window (a few at a time per client).
    ends: list[float] = []

    async def final(i: int, run_id: str) -> None:
        try:
            run = _body(await clients[i].get(f"/runs/{run_id}"), "GET /runs/{id}")
        except (Failed, httpx.HTTPError) as exc:
            phase.statuses["unknown"] += 1
            phase.errors[f"GET /runs/{{id}} after the phase: {str(exc)[:120]}"] += 1
            return
        status = str(run.get("status"))
        phase.statuses[status] += 1
        if status not in TERMINAL:
            phase.unfinished += 1
            phase.errors[f"not finished after the phase timeout of {cap:g} s"] += 1
            return
        end = datetime.fromisoformat(str(run["updated_at"])).timestamp()
        ends.append(end)
        if status == "success":
            phase.ok += 1
            phase.latencies.append(end - posted[run_id])
        else:
            phase.errors[f"run {status}: {str(run.get('error'))[:160]}"] += 1

    await asyncio.gather(*(final(i, run_id) for i, run_id in enumerate(posted)))
    phase.cut_short = not ended or bool(pending)
    phase.wall = cap if phase.cut_short or not ends else max(ends) - started_wall


async def runs_left(host: Host, page: int = 100, max_pages: int = 30) -> dict[str, int]:
    """How many runs the host still has pending and running (POST /runs/search, paged)."""
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=host.base_url, headers=host.headers, timeout=30) as c:
        for status in ("pending", "running"):
            counts[status] = 0
            for index in range(max_pages):
                body = {"status": status, "limit": page, "offset": index * page}
                found = _ok(await c.post("/runs/search", json=body), "POST /runs/search")
                counts[status] += len(found)
                if len(found) < page:
                    break
    return counts


async def settle(model_url: str, host: Host, seconds: float = SETTLE_SECONDS) -> int:
    """Wait until the model has no call in flight (runs cut short may still go on)."""
    deadline = time.monotonic() + seconds
    in_flight = 0
    async with httpx.AsyncClient(base_url=model_url, timeout=5.0) as client:
        while time.monotonic() < deadline and host.process.poll() is None:
            in_flight = int((await client.get("/stats")).json()["in_flight"])
            if in_flight == 0:
                return 0
            await asyncio.sleep(0.2)
    return in_flight


@dataclass
class Results:
    phases: list[Phase] = field(default_factory=list)
    rss_start: float = 0.0
    notes: list[str] = field(default_factory=list)
    sdk: dict[str, float] = field(default_factory=dict)


def sdk_floor(model_url: str, runs: int) -> dict[str, float]:
    """The same runs through the Agents SDK alone, in a process of its own (bench/sdk_floor.py)."""
    command = [sys.executable, "-m", "bench.sdk_floor", "--base-url", model_url]
    command += ["--runs", str(runs), "--input", PROMPT]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.sdk_floor failed:\n{done.stderr[-2000:]}")
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


async def measure(host: Host, model_url: str, args: argparse.Namespace, results: Results) -> None:
    """Warm up, then the client floor, the sync phase and the background phase.

    Each phase gets new HTTP clients (new connections): an idle keep-alive connection from an
    earlier phase could be closed by the server just as a request goes out on it.
    """
    pid = host.process.pid
    results.rss_start = rss_mb(pid) or 0.0
    poll = args.poll_interval if args.observe == "poll" else 0.0

    def clients(base_url: str, headers: dict[str, str], count: int) -> Clients:
        return Clients(base_url, headers, count, args.connections_per_client)

    api = clients(host.base_url, host.headers, WARM_RUNS)
    model = clients(model_url, {}, WARM_RUNS)
    try:
        warm = Phase("warm-up", WARM_RUNS)
        await run_phase(warm, sync_one(api, warm), args.phase_timeout)
        warm_bg = Phase("warm-up", WARM_RUNS)
        await run_phase(warm_bg, background_one(api, warm_bg, poll), args.phase_timeout)
        await run_phase(Phase("warm-up", WARM_RUNS), floor_one(model), args.phase_timeout)
    finally:
        await api.aclose()
        await model.aclose()
    if warm.ok + warm_bg.ok < 2 * WARM_RUNS:
        results.notes.append(
            f"warm-up: {warm.ok + warm_bg.ok} of {2 * WARM_RUNS} runs succeeded, e.g. "
            f"{next(iter(warm.errors | warm_bg.errors), '')}"
        )

    print(f"phase SDK alone: {args.runs} runs in a process of their own ...", flush=True)
    await settle(model_url, host)
    model_stats(model_url, reset=True)
    results.sdk = await asyncio.to_thread(sdk_floor, model_url, args.runs)
    results.sdk["max_in_flight"] = float(model_stats(model_url).get("max_in_flight", 0))

    for name in ("client floor", "sync", "background"):
        if host.process.poll() is not None:
            break
        left = await settle(model_url, host)
        if left:
            results.notes.append(f"before {name}: {left} model calls still in flight")
        phase = Phase(name, args.runs)
        print(f"phase {name}: {args.runs} runs ...", flush=True)
        if name == "client floor":
            load = clients(model_url, {}, args.runs)
        else:
            load = clients(host.base_url, host.headers, args.runs)
        model_stats(model_url, reset=True)
        try:
            with RssSampler(pid) as rss:
                if name == "client floor":
                    await run_phase(phase, floor_one(load), args.phase_timeout)
                elif name == "sync":
                    await run_phase(phase, sync_one(load, phase), args.phase_timeout)
                elif args.observe == "search":
                    await background_search_phase(
                        phase, load, host, args.phase_timeout, args.poll_interval
                    )
                else:
                    await run_phase(phase, background_one(load, phase, poll), args.phase_timeout)
            phase.model = model_stats(model_url)
        finally:
            await load.aclose()
        if phase.cut_short and name == "background" and host.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError, ValueError, Failed):
                phase.host_left = await runs_left(host)
        phase.rss_before, phase.rss_growth = rss.before, rss.growth
        results.phases.append(phase)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _verdict(phase: Phase) -> str:
    if phase.name == "client floor":
        return "(no host)"
    wall_ok = not phase.cut_short and phase.failed == 0 and phase.wall <= TARGET_WALL_S
    rss_ok = phase.rss_growth <= TARGET_RSS_MB
    return f"wall {'met' if wall_ok else 'MISSED'}, RSS {'met' if rss_ok else 'MISSED'}"


def host_log_summary(host: Host, limit: int = 8) -> list[str]:
    """The first distinct warning/error lines of the host's log, with their counts."""
    counts: Counter[str] = Counter()
    for line in host.log_path.read_text(errors="replace").splitlines():
        if line.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback")) or "Error" in line[:60]:
            counts[line[:200]] += 1
    return [f"{count:>6} x {line}" for line, count in counts.most_common(limit)]


def report(args: argparse.Namespace, host: Host, results: Results, total: float) -> None:
    database = "Postgres/other (--database-url)" if args.database_url else "SQLite"
    wait = {
        "wait": "GET /runs/{id}/wait",
        "poll": f"polling GET /runs/{{id}} every {args.poll_interval:g} s",
        "search": f"watching POST /runs/search every {args.poll_interval:g} s",
    }[args.observe]
    per_client = args.connections_per_client or args.runs
    print()
    print(
        f"Scale: {args.runs} concurrent runs of {AGENT!r}, fake model latency {args.latency:g} s, "
        f"one dev host ({database}, embedded queue, --no-jobs); background runs waited by "
        f"{wait}; {-(-args.runs // per_client)} HTTP clients x {per_client} connections; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    print(f"host RSS after start {results.rss_start:.0f} MB")
    header = (
        f"{'phase':<13} {'runs':>5} {'ok':>5} {'failed':>6} {'wall s':>7} {'runs/s':>7} "
        f"{'p50 s':>6} {'p95 s':>6} {'RSS +MB':>8} {'max model conc':>14}  "
        f"targets: wall <= {TARGET_WALL_S:g} s, RSS +<= {TARGET_RSS_MB:g} MB"
    )
    print()
    print(header)
    print("-" * len(header))
    for p in results.phases:
        wall = f"{p.wall:.2f}" + ("*" if p.cut_short else "")
        rate = p.ok / p.wall if p.wall > 0 else 0.0
        rss = "-" if p.name == "client floor" else f"{p.rss_growth:.0f}"
        print(
            f"{p.name:<13} {p.runs:>5} {p.ok:>5} {p.failed:>6} {wall:>7} {rate:>7.1f} "
            f"{_seconds(p.percentile(50)):>6} {_seconds(p.percentile(95)):>6} {rss:>8} "
            f"{p.model.get('max_in_flight', '-'):>14}  {_verdict(p)}"
        )
    if results.sdk:
        sdk = results.sdk
        print(
            f"{'SDK alone':<13} {args.runs:>5} {sdk['ok']:>5.0f} {args.runs - sdk['ok']:>6.0f} "
            f"{sdk['wall']:>7.2f} {sdk['ok'] / sdk['wall']:>7.1f} {'-':>6} {'-':>6} {'-':>8} "
            f"{sdk['max_in_flight']:>14.0f}  the floor for one Python process: "
            f"{sdk['cpu'] / args.runs * 1000:.1f} ms CPU per run"
        )
        for p in results.phases:
            if p.name in ("sync", "background") and p.ok:
                print(f"  {p.name} wall / SDK alone wall: {p.wall / sdk['wall']:.2f}")
    if any(p.cut_short for p in results.phases):
        print(f"* cut short by --phase-timeout {args.phase_timeout:g} s (wall = the timeout)")
    print()
    for p in results.phases:
        model = ", ".join(
            f"{k} {p.model.get(k)}" for k in ("completions", "disconnected", "in_flight")
        )
        line = f"{p.name}: RSS before {p.rss_before:.0f} MB; model: {model}"
        if p.statuses:
            line += "; statuses: " + ", ".join(f"{k} {v}" for k, v in p.statuses.most_common())
        if p.host_left:
            left = ", ".join(f"{k} {v}" for k, v in p.host_left.items())
            line += f"; at the cut the host still had: {left}"
        print(line)
        for error, count in list(p.errors.most_common())[:MAX_ERRORS_SHOWN]:
            print(f"    {count:>5} x {error}")
    for note in results.notes:
        print(f"note: {note}")
    lines = host_log_summary(host)
    print(f"\nhost log ({host.log_path.name}): {len(lines) or 'no'} distinct warnings/errors")
    for line in lines:
        print(f"  {line}")
    print(f"\nwhole bench: {total:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs per phase")
    parser.add_argument("--latency", type=float, default=1.0, help="fake model latency, seconds")
    parser.add_argument(
        "--phase-timeout", type=float, default=60.0, help="cap on each phase, seconds"
    )
    parser.add_argument(
        "--observe",
        choices=("wait", "poll", "search"),
        default="wait",
        help="how the background phase sees its runs end: GET /runs/{id}/wait per run (default), "
        "polling GET /runs/{id} per run, or one watcher of POST /runs/search",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="seconds between polls for --observe poll and search",
    )
    parser.add_argument(
        "--connections-per-client",
        type=int,
        default=10,
        help="HTTP connections per httpx client (0: one client for all runs)",
    )
    parser.add_argument("--database-url", default=None, help="instead of a temporary SQLite")
    parser.add_argument(
        "--keep", type=Path, default=None, help="use and keep this work dir (host log, DB)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    started = time.perf_counter()
    results = Results()
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ascent-scale-")))
        else:
            work = args.keep
        print(f"starting the fake model (latency {args.latency:g} s) and a dev host ...")
        model_url = stack.enter_context(running_fake_model(latency=args.latency))
        try:
            host = stack.enter_context(scale_host(work, model_url, args.runs, args.database_url))
        except RuntimeError as exc:  # the host exited or never became healthy: its log says why
            print(f"the dev host did not start: {exc}")
            return 1
        try:
            asyncio.run(measure(host, model_url, args, results))
        except Exception as exc:
            raise RuntimeError(f"measurement failed; dev host log:\n{host.log_tail()}") from exc
        died = host.process.poll()
        report(args, host, results, time.perf_counter() - started)
        if died is not None:
            print(f"\nthe dev host DIED (exit code {died}); its log ends:\n{host.log_tail()}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
