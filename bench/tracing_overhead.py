"""Tracing overhead: sync runs/s with OpenTelemetry exporting over OTLP, against tracing off.

Run it with `.venv/bin/python -m bench.tracing_overhead`. Two dev hosts on the offline model,
each on its own SQLite data dir, measured side by side in one run:

- **off**: no exporter setting (the default): no-op providers, the Agents SDK's tracing
  disabled, nothing leaves the process;
- **OTLP**: OTEL_EXPORTER_OTLP_ENDPOINT set to an OTLP/HTTP receiver in this process (the
  collector stand-in of the tests, tests/fakes/otlp_receiver.py, which decodes every
  `ExportTraceServiceRequest`), metrics exported too: every run records its request, run,
  agent and model spans (batched, exported in the background) and its metrics.

Each round drives the same count of `POST /api/agents/assistant/runs` (a new thread per run,
one model call, no tool) at concurrency 16 on each host in turn, so drift on a shared machine
hits both; the median round of each is reported, and the ratio OTLP / off (target >= 0.9).
The benchmark asserts nothing about timing; the receiver's span count shows the export ran.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.turn_overhead import Host, Load, drive, http_client, post_run, running_host
from tests.fakes.otlp_receiver import otlp_receiver

TARGET_RATIO = 0.9
PROMPT = "Hello there, how are you today?"


async def _rounds(
    off: Host, on: Host, *, runs: int, concurrency: int, rounds: int
) -> tuple[list[Load], list[Load]]:
    """Alternate loads on the two hosts; the loads of each."""
    loads: dict[str, list[Load]] = {"off": [], "on": []}
    async with http_client(off, concurrency) as plain, http_client(on, concurrency) as traced:
        clients = {"off": plain, "on": traced}

        def runner(name: str) -> Callable[[int], Awaitable[None]]:
            async def one(_: int) -> None:
                await post_run(clients[name], {"input": PROMPT})

            return one

        for name in ("off", "on"):  # warm: imports, agent build, pools, SQLite pages
            await drive(2 * concurrency, concurrency, runner(name))
        for _ in range(rounds):
            for name in ("off", "on"):
                loads[name].append(await drive(runs, concurrency, runner(name)))
    return loads["off"], loads["on"]


def main(argv: list[str] | None = None) -> int:
    """Measure and print the two rates and their ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_overhead")
    parser.add_argument("--runs", type=int, default=200, help="runs per load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ascent-bench-otel-") as tmp, otlp_receiver() as sink:
        exporting = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "bench",
            "OTEL_METRICS_EXPORTER": "otlp",
        }
        with (
            running_host(Path(tmp) / "off") as off,
            running_host(Path(tmp) / "on", extra_env=exporting) as on,
        ):
            plain, traced = asyncio.run(
                _rounds(off, on, runs=args.runs, concurrency=args.concurrency, rounds=args.rounds)
            )
        spans = len(sink.spans)  # the hosts flushed their batches when they stopped
    off_rate = statistics.median(load.rate for load in plain)
    on_rate = statistics.median(load.rate for load in traced)
    ratio = on_rate / off_rate
    print(f"tracing off : {off_rate:8.1f} runs/s  (rounds: {[round(x.rate) for x in plain]})")
    print(f"OTLP export : {on_rate:8.1f} runs/s  (rounds: {[round(x.rate) for x in traced]})")
    print(f"ratio OTLP / off = {ratio:.2f}  (target >= {TARGET_RATIO})")
    print(f"spans received by the collector stand-in: {spans}")
    failures = sum(len(load.errors) for load in (*plain, *traced))
    if failures:
        print(f"failed runs: {failures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
