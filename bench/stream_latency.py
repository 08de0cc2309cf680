"""Stream latency: how soon a streamed run shows its first token, and /runs/wait throughput.

Run it with `.venv/bin/python -m bench.stream_latency`. It starts one dev host
(`python -m local.devhost --no-jobs`, SQLite in a temporary data dir, the offline model, a free
port, rate and concurrency limits off: bench.turn_overhead's `running_host`) and measures, side
by side in one run:

1. **Time to first event, concurrency 1.** `POST /api/runs/stream {"agent_id": "assistant",
   "input": ..., "stream_mode": ["values", "messages"]}` (the endpoint's default mode is
   `values` only, which carries no token deltas), timed from sending the request to the first
   complete SSE event of any kind (`metadata`, written with the run) and to the first
   `messages` event (a token delta, `AIMessageChunk`); also to `end`. Against it, in this
   process, `Runner.run_streamed(get_agent("assistant"), input, run_config=RunConfig(
   model_provider=OfflineModelProvider(), tracing_disabled=True))`, timed from the call to its
   first stream event of any kind and to its first raw `response.output_text.delta` event; the
   stream is drained to its end in both cases so runs do not overlap. Samples alternate HTTP
   and in-process (N each, default 50, after a few warm-up runs) so drift on a shared machine
   hits both; p50 and p95 of each are printed with the ratio HTTP / in-process of the
   first-token p50. What the HTTP figure adds: auth, the run and thread inserts, enqueueing the
   run on the embedded queue and the queue driver picking it up, the SDK session, the events'
   batched commits (EventWriter) and the SSE tail, which polls the `run_events` table every
   ASCENT_RUN_POLL_SECONDS (0.1 s by default; `--poll-seconds` sets it on the host). The
   "first event -> first token" row is that part of the path: from `metadata` (written with
   the run) to the first persisted, committed and tailed token.
2. **Throughput, concurrency 16.** `POST /api/runs/wait {"agent_id": "assistant", "input":
   ...}` (a stateless run: new thread, deleted when it ends; the request polls the run's
   status every ASCENT_RUN_POLL_SECONDS until it ends, then reads its final `values`) against
   `POST /api/agents/assistant/runs` (a new thread per run, executed inside the request), the
   same count (default 200) from 16 closed-loop workers, rounds alternating, each load capped
   at MAX_LOAD_SECONDS (`*`: cut short, rate = completed runs / elapsed time). The median
   round of each is printed with the ratio wait / sync.

Nothing about timing is asserted: compare the ratios, and absolute figures only within one
run (the client shares the machine with the host). Failed runs are counted and printed next to
their figure; a load with more than 10 % failures aborts. The whole bench keeps to a time
budget (default 120 s of measurement, < 2.5 min in all); the host is stopped at the end, also
on error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

SAMPLES = 50
WARMUP = 5
RUNS = 200
CONCURRENCY = 16
ROUNDS = 2
MAX_LOAD_SECONDS = 12.0
# Section 1 stops taking samples after this share of the budget (both kinds equally many).
LATENCY_SHARE = 0.4
BUDGET_SECONDS = 120.0
# A run not done this long after its request counts as failed (keeps every sample bounded).
RUN_TIMEOUT = 15.0
STREAM_MODES = ["values", "messages"]
# Throughput and latency, not cron jobs: no scheduled job competes with the load.
HOST_ARGS = ("--no-jobs",)


# --------------------------------------------------------------------------------------------
# Section 1: time to first event
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTimes:
    """One streamed run, seconds from the request (or the call): first event, first token, end."""

    first_event: float
    first_token: float
    done: float


@dataclass
class StreamSamples:
    """The samples of one path, and its failures."""

    times: list[StreamTimes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def load(self, which: str) -> Load:
        """The samples' `which` times as a Load, for its percentiles (rate meaningless)."""
        values = [getattr(t, which) for t in self.times]
        return Load(len(values), 1.0, values, self.errors)


async def http_stream_once(client: httpx.AsyncClient) -> StreamTimes:
    """POST /runs/stream and read the SSE to `end`; time the first event and first `messages`."""
    body = {"agent_id": AGENT, "input": PROMPT, "stream_mode": STREAM_MODES}
    first_event: float | None = None
    first_token: float | None = None
    event: str | None = None
    data: list[str] = []
    status: str | None = None
    started = time.perf_counter()
    async with client.stream("POST", "/runs/stream", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RunFailed(f"HTTP {response.status_code} {text[:200]}")
        async for line in response.aiter_lines():
            if line:
                field_name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field_name == "event":
                    event = value
                elif field_name == "data":
                    data.append(value)
                continue  # `id:` and `: keepalive` comments need nothing
            if event is None and not data:
                continue
            # A blank line dispatches the event (SSE): that is when a client sees it.
            now = time.perf_counter() - started
            if first_event is None:
                first_event = now
            if event == "messages" and first_token is None:
                first_token = now
            if event == "error":
                raise RunFailed(f"error event: {''.join(data)[:200]}")
            if event == "end":
                status = "".join(data)
                break
            event, data = None, []
    done = time.perf_counter() - started
    if first_event is None or first_token is None:
        raise RunFailed(f"stream ended without a messages event (end: {status})")
    if status is None or '"success"' not in status:
        raise RunFailed(f"stream did not end with success: {status}")
    return StreamTimes(first_event, first_token, done)


def in_process_stream() -> Callable[[], Awaitable[StreamTimes]]:
    """One in-process streamed run with the offline model, no session, no trace, drained."""
    from agents import RawResponsesStreamEvent, RunConfig, Runner

    from shared.agents import get_agent
    from shared.platform.offline_model import OfflineModelProvider

    agent = get_agent(AGENT)

    async def once() -> StreamTimes:
        started = time.perf_counter()
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        result = Runner.run_streamed(agent, PROMPT, run_config=config)
        first_event: float | None = None
        first_token: float | None = None
        async for ev in result.stream_events():
            now = time.perf_counter() - started
            if first_event is None:
                first_event = now
            if (
                first_token is None
                and isinstance(ev, RawResponsesStreamEvent)
                and ev.data.type == "response.output_text.delta"
            ):
                first_token = now
        done = time.perf_counter() - started
        if first_event is None or first_token is None or not result.final_output:
            raise RuntimeError("in-process streamed run produced no text delta")
        return StreamTimes(first_event, first_token, done)

    return once


async def _guarded(one: Callable[[], Awaitable[StreamTimes]], into: StreamSamples) -> None:
    """One sample into `into`; a failed HTTP run is recorded, too many abort."""
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            into.times.append(await one())
    except TimeoutError:
        into.errors.append(f"not done after {RUN_TIMEOUT:g} s")
    except (RunFailed, httpx.HTTPError) as exc:
        into.errors.append(f"{type(exc).__name__}: {exc}")
    tried = len(into.times) + len(into.errors)
    if len(into.errors) > max(2, 0.1 * tried):
        raise RuntimeError(f"{len(into.errors)} of {tried} streamed runs failed: {into.errors[0]}")


@dataclass(frozen=True)
class FirstEvent:
    http: StreamSamples
    in_process: StreamSamples
    cut_short: bool


async def measure_first_event(host: Host, samples: int, end: float) -> FirstEvent:
    """Alternate HTTP and in-process streamed runs, one at a time, until N each or `end`."""
    in_process = in_process_stream()
    http, local = StreamSamples(), StreamSamples()
    async with http_client(host, 1) as client:

        async def http_one() -> StreamTimes:
            return await http_stream_once(client)

        warm_http, warm_local = StreamSamples(), StreamSamples()
        for _ in range(WARMUP):  # imports, agent build, connection, SQLite pages
            await _guarded(http_one, warm_http)
            await _guarded(in_process, warm_local)
        for i in range(samples):
            if time.perf_counter() > end:
                return FirstEvent(http, local, cut_short=True)
            # Alternate which goes first too, so neither always follows the other.
            pair = (http_one, http), (in_process, local)
            for one, into in pair if i % 2 == 0 else reversed(pair):
                await _guarded(one, into)
    return FirstEvent(http, local, cut_short=False)


# --------------------------------------------------------------------------------------------
# Section 2: /runs/wait throughput
# --------------------------------------------------------------------------------------------


def _bounded(one: Callable[[], Awaitable[None]]) -> Callable[[int], Awaitable[None]]:
    """`one` with a per-run deadline; transport errors and timeouts count as failed runs."""

    async def run(_: int) -> None:
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                await one()
        except TimeoutError:
            raise RunFailed(f"not done after {RUN_TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            raise RunFailed(f"{type(exc).__name__}: {exc}") from None

    return run


async def wait_run(client: httpx.AsyncClient) -> None:
    """POST /runs/wait (stateless run) and check that it succeeded."""
    response = await client.post("/runs/wait", json={"agent_id": AGENT, "input": PROMPT})
    if response.status_code != 200:
        raise RunFailed(f"HTTP {response.status_code} {response.text[:200]}")
    data: dict[str, Any] = response.json()
    status = (data.get("run") or {}).get("status")
    if status != "success" or not data.get("messages"):
        raise RunFailed(f"run {status}: {str(data.get('__error__'))[:200]}")


@dataclass
class Throughput:
    wait: list[Load] = field(default_factory=list)
    sync: list[Load] = field(default_factory=list)


async def measure_throughput(host: Host, args: argparse.Namespace, end: float) -> Throughput:
    """Warm both paths, then alternate /runs/wait and sync loads while the budget lasts."""
    result = Throughput()
    async with http_client(host, args.concurrency) as client:

        async def wait_one() -> None:
            await wait_run(client)

        async def sync_one() -> None:
            await post_run(client, {"input": PROMPT})

        wait, sync = _bounded(wait_one), _bounded(sync_one)
        warm = 2 * args.concurrency
        await drive(warm, args.concurrency, wait, max_seconds=args.max_load_seconds)
        await drive(warm, args.concurrency, sync, max_seconds=args.max_load_seconds)
        for i in range(args.rounds):
            order = ((result.wait, wait), (result.sync, sync))
            for loads, one in order if i % 2 == 0 else reversed(order):
                left = end - time.perf_counter()
                if left < 1.0:
                    return result
                cap = min(args.max_load_seconds, left)
                loads.append(await drive(args.runs, args.concurrency, one, max_seconds=cap))
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _pcts(load: Load) -> str:
    if not load.latencies:
        return "-"
    return f"{load.percentile_ms(50):7.2f} / {load.percentile_ms(95):7.2f} ms"


def report(
    args: argparse.Namespace, first: FirstEvent | None, tp: Throughput, total: float
) -> None:
    """Section 1: p50/p95 of each time and the ratios; section 2: runs/s and the ratio."""
    poll = f"{args.poll_seconds:g} s" if args.poll_seconds else "host default, 0.1 s"
    print()
    print(
        f"Stream latency: agent {AGENT!r}, offline model, SQLite, embedded queue; "
        f"ASCENT_RUN_POLL_SECONDS {poll}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    if first is not None:
        n_http, n_local = len(first.http.times), len(first.in_process.times)
        more = f"; cut short by the budget at {n_http}" if first.cut_short else ""
        print(
            f"\n1. Time to first event at concurrency 1 ({n_http} HTTP + {n_local} in-process "
            f"streamed runs, alternating{more}); p50 / p95"
        )
        h_tok, l_tok = first.http.load("first_token"), first.in_process.load("first_token")
        h_any, l_any = first.http.load("first_event"), first.in_process.load("first_event")
        h_end, l_end = first.http.load("done"), first.in_process.load("done")
        _row("HTTP /runs/stream -> first `messages` event", _pcts(h_tok), _errors(h_tok))
        _row("in-process run_streamed -> first text delta", _pcts(l_tok))
        if h_tok.latencies and l_tok.latencies:
            ratio = h_tok.percentile_ms(50) / l_tok.percentile_ms(50)
            extra = h_tok.percentile_ms(50) - l_tok.percentile_ms(50)
            _row("ratio first token HTTP / in-process (p50)", f"{ratio:.1f}", f"+{extra:.1f} ms")
        _row("HTTP /runs/stream -> first event (`metadata`)", _pcts(h_any))
        _row("in-process run_streamed -> first event", _pcts(l_any))
        if h_any.latencies and l_any.latencies:
            ratio = h_any.percentile_ms(50) / l_any.percentile_ms(50)
            _row("ratio first event HTTP / in-process (p50)", f"{ratio:.1f}")
        if h_tok.latencies and h_any.latencies:
            gap = [t.first_token - t.first_event for t in first.http.times]
            gaps = Load(len(gap), 1.0, gap)
            _row("HTTP first event -> first token", _pcts(gaps), "(run start + commit + tail)")
        _row("HTTP /runs/stream -> `end`", _pcts(h_end))
        _row("in-process run_streamed -> stream drained", _pcts(l_end))

    print(f"\n2. Throughput at concurrency {args.concurrency}, {args.runs} runs per load")
    if not tp.wait or not tp.sync:
        print("  no complete round within the time budget")
    else:
        wait = median([load.rate for load in tp.wait])
        sync = median([load.rate for load in tp.sync])
        waits = [x for load in tp.wait for x in load.latencies]
        syncs = [x for load in tp.sync for x in load.latencies]
        w_p50 = Load(len(waits), 1.0, waits).percentile_ms(50) if waits else 0.0
        s_p50 = Load(len(syncs), 1.0, syncs).percentile_ms(50) if syncs else 0.0
        _row(
            "POST /runs/wait (stateless)",
            f"{wait:.1f} runs/s",
            f"rounds: {' '.join(_rate(x) for x in tp.wait)}; p50 {w_p50:.0f} ms{_errors(*tp.wait)}",
        )
        _row(
            f"POST /agents/{AGENT}/runs (sync, new thread)",
            f"{sync:.1f} runs/s",
            f"rounds: {' '.join(_rate(x) for x in tp.sync)}; p50 {s_p50:.0f} ms{_errors(*tp.sync)}",
        )
        _row("ratio /runs/wait / sync", f"{wait / sync:.3f}")
    print(
        f"\n* a load cut short after {args.max_load_seconds:g} s or by the budget "
        "(rate = completed runs / time)"
    )
    print(f"whole bench: {total:.1f} s")


async def _measure(
    host: Host, args: argparse.Namespace, started: float
) -> tuple[FirstEvent | None, Throughput]:
    first = None
    if args.samples > 0:
        end = started + LATENCY_SHARE * args.budget
        first = await measure_first_event(host, args.samples, end)
    return first, await measure_throughput(host, args, started + args.budget)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--samples", type=int, default=SAMPLES, help="streamed runs per path (0 skips 1)"
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per throughput load")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    parser.add_argument("--max-load-seconds", type=float, default=MAX_LOAD_SECONDS)
    parser.add_argument(
        "--budget", type=float, default=BUDGET_SECONDS, help="seconds for all measurements"
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        help="ASCENT_RUN_POLL_SECONDS for the host (default: the host's own, 0.1 s)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="use and keep this work dir (host log, DB)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    env = {} if args.poll_seconds is None else {"ASCENT_RUN_POLL_SECONDS": str(args.poll_seconds)}
    with tempfile.TemporaryDirectory(prefix="ascent-bench-stream-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        print("measuring time to first event, then /runs/wait throughput ...", flush=True)
        with running_host(work / "host", extra_env=env, extra_args=HOST_ARGS) as host:
            try:
                first, tp = asyncio.run(_measure(host, args, time.perf_counter()))
            except Exception as exc:
                code = host.process.poll()
                state = "still running" if code is None else f"exited with {code}"
                raise RuntimeError(
                    f"measurement failed; dev host {state}; its log:\n{host.log_tail()}"
                ) from exc
    report(args, first, tp, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
