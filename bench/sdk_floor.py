"""The Agents SDK alone: N concurrent streamed runs in one process, no Ascent around them.

`python -m bench.sdk_floor --base-url URL --runs N [--input TEXT]` runs N concurrent
`Runner.run_streamed(get_agent("assistant").clone(), input, run_config=run_config())` against
the OpenAI-compatible server at URL, through Ascent's own model seam (shared/platform/llm.py,
MODEL_PROVIDER=compatible: the same client and HTTP transport the host uses), and prints one
JSON line: wall seconds, CPU seconds of this process, runs that succeeded. `bench.scale` runs
it in a process of its own, so its figure is what one Python process on this machine does
with the SDK and nothing else: the floor for the host's sync phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time


async def _measure(runs: int, text: str) -> dict[str, float]:
    # Imported here, after the environment names the provider, so settings read it.
    from agents import Runner

    from shared.agents import get_agent
    from shared.platform.llm import aclose_model_clients, run_config

    async def one() -> bool:
        result = Runner.run_streamed(get_agent("assistant").clone(), text, run_config=run_config())
        async for _ in result.stream_events():
            pass
        return result.final_output is not None

    try:
        await asyncio.gather(*(one() for _ in range(5)))  # warm-up: connections, imports
        wall, cpu = time.perf_counter(), time.process_time()
        done = await asyncio.gather(*(one() for _ in range(runs)), return_exceptions=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await aclose_model_clients()
    return {"wall": wall, "cpu": cpu, "ok": sum(1 for d in done if d is True)}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the load, print the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_floor", description=__doc__)
    parser.add_argument(
        "--base-url", required=True, help="the fake model, e.g. http://127.0.0.1:8399"
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--input", default="Hello there, how are you today?")
    args = parser.parse_args(argv)
    os.environ.update(
        MODEL_PROVIDER="compatible",
        OPENAI_BASE_URL=f"{args.base_url}/v1",
        OPENAI_API_KEY="unused",
        ASCENT_MAX_IN_FLIGHT_RUNS=str(max(args.runs, 100)),
    )
    print(json.dumps(asyncio.run(_measure(args.runs, args.input))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
