"""MCP tool-call overhead: one MCP tool call against the same tool as an in-process function tool.

Run it with `.venv/bin/python -m bench.mcp_overhead`. It starts the MCP tool server
(`python -m mcp_tools`, a free port) and, in one process, times sequential runs of an agent
whose single tool call is the calculator ("Please calculate 12 * (3 + 4)": two offline-model
calls, one tool call), three ways, rounds interleaved so drift on a shared machine hits all:

1. **in-process**: the catalog's `calculate` function tool;
2. **MCP, pooled** (ASCENT_MCP_CONNECTIONS=pooled): the tool server's `calculate` through the
   process's pooled client (connected once, tool list cached);
3. **MCP, per run** (ASCENT_MCP_CONNECTIONS=per_run): a client connected inside each run's
   `mcp_scope()` and closed at its end (initialize, list tools, call, close every run).

It prints the median run latency of each and the ratios MCP / in-process, then the rate of
each at concurrency 16 (a pooled client sends one request at a time: the SDK serializes the
requests of a shared streamable-HTTP session, so concurrent runs queue on it). Runs go through
`Runner.run` with the offline model and no session or database, so the figures are the
tool path's own cost. It asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents import Agent, RunConfig, Runner

from local.devhost_process import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Please calculate 12 * (3 + 4)"
EXPECTED = "12 * (3 + 4) = 84"
CONCURRENT_RUNS = 320


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_tool_server() -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m mcp_tools` on a free port; wait until it accepts connections."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASCENT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_tools", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _listening(port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the MCP tool server did not start")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}/mcp"


def use_settings(**env: str) -> None:
    """Set settings env vars and drop the cached settings."""
    from shared.core.settings import get_settings

    os.environ.update(env)
    get_settings.cache_clear()


async def timed(run: Callable[[], Awaitable[str]]) -> float:
    """One run's latency in milliseconds (its answer checked)."""
    started = time.perf_counter()
    answer = await run()
    elapsed = (time.perf_counter() - started) * 1000
    if answer != EXPECTED:
        raise RuntimeError(f"unexpected answer {answer!r}")
    return elapsed


async def rate(run: Callable[[], Awaitable[str]], concurrency: int, count: int) -> float:
    """Runs per second of `count` runs, `concurrency` at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await timed(run)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


async def bench(url: str, rounds: int, per_round: int, concurrency: int) -> dict[str, list[float]]:
    """Interleaved rounds of the three variants; every run's latency by variant."""
    from examples.assistant import calculate
    from shared.agents.mcp_servers import DeclaredServer, McpServerDecl, close_pool, mcp_scope
    from shared.core.context import RunContext
    from shared.platform.offline_model import OfflineModelProvider

    config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
    context = RunContext("bench", "bench", "thread", "run")
    local: Agent[Any] = Agent(name="local", instructions="", tools=[calculate])
    decl = McpServerDecl(name="tools", url=url, allow=("calculate",), tools={"calculate": "read"})
    remote: Agent[Any] = Agent(name="remote", instructions="", mcp_servers=[DeclaredServer(decl)])

    async def run_on(agent: Agent[Any]) -> str:
        result = await Runner.run(agent, PROMPT, run_config=config, context=context)
        return str(result.final_output)

    async def per_run() -> str:
        async with mcp_scope():
            return await run_on(remote)

    results: dict[str, list[float]] = {"in-process": [], "MCP pooled": [], "MCP per run": []}
    variants: dict[str, tuple[str, Callable[[], Awaitable[str]]]] = {
        "in-process": ("pooled", lambda: run_on(local)),
        "MCP pooled": ("pooled", lambda: run_on(remote)),
        "MCP per run": ("per_run", per_run),
    }
    use_settings(ASCENT_MCP_CONNECTIONS="pooled")
    await run_on(remote)  # connect the pool once: its cost is paid once per process
    for _ in range(rounds):
        for name, (mode, run) in variants.items():
            use_settings(ASCENT_MCP_CONNECTIONS=mode)
            for _ in range(per_round):
                results[name].append(await timed(run))
    # Concurrency: one pooled client serializes its requests (the SDK's streamable-HTTP
    # client sends one at a time), so concurrent runs queue where per-run clients do not.
    for name, (mode, run) in variants.items():
        use_settings(ASCENT_MCP_CONNECTIONS=mode)
        results[f"{name} rate"] = [await rate(run, concurrency, CONCURRENT_RUNS)]
    await close_pool()
    return results


def main() -> None:
    """Start the tool server, run the rounds, print medians and ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40, help="runs per variant per round")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    process, url = start_tool_server()
    try:
        results = asyncio.run(bench(url, args.rounds, args.runs, args.concurrency))
    finally:
        process.kill()
        process.wait()
    base = statistics.median(results["in-process"])
    print(f"one calculator call per run, {args.rounds} x {args.runs} runs per variant")
    for name, values in results.items():
        if name.endswith(" rate"):
            continue
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(
            f"  {name:<12} median {median:7.2f} ms  p95 {p95:7.2f} ms  "
            f"ratio to in-process {median / base:5.1f}x"
        )
    pooled = statistics.median(results["MCP pooled"])
    per_run = statistics.median(results["MCP per run"])
    print(f"  per run / pooled: {per_run / pooled:.1f}x")
    print(f"{CONCURRENT_RUNS} runs, {args.concurrency} at a time:")
    base_rate = results["in-process rate"][0]
    for name in ("in-process", "MCP pooled", "MCP per run"):
        rate = results[f"{name} rate"][0]
        print(f"  {name:<12} {rate:8.1f} runs/s  ratio to in-process {rate / base_rate:5.2f}")


if __name__ == "__main__":
    main()
