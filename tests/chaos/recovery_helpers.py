"""Helpers of the recovery scenarios: hosts on a fresh Postgres, SQL checks, measured figures.

Each scenario prints its figures (runs, kills, recoveries, longest recovery, 5xx) and appends
them as one JSON line to ASCENT_CHAOS_SUMMARY (default: `ascent-chaos-summary.jsonl` in the
temp dir), which `bench/chaos_recovery.py` and the report read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import DevHost

SUMMARY = Path(
    os.environ.get("ASCENT_CHAOS_SUMMARY")
    or Path(tempfile.gettempdir()) / "ascent-chaos-summary.jsonl"
)
TERMINAL = ("run.completed", "run.failed", "run.cancelled")
# Short leases, so a scenario is bounded by seconds: the relation is the default one
# (heartbeat = lease / 3, sweep interval = lease / 2, takeover bound = lease + sweep).
SHORT_LEASES = {
    "ASCENT_RUN_LEASE_SECONDS": "4",
    "ASCENT_QUEUE_MESSAGE_LEASE_SECONDS": "4",
    "ASCENT_EVENTS_RETRY_SECONDS": "0.2",
}
# run lease 4 + sweep interval 2 (half the lease). Not shorter: on a shared 2-core machine an
# event loop can stall for seconds, and a live holder must renew within its lease.
TAKEOVER_BOUND = 6.0


def report(scenario: str, **figures: Any) -> None:
    """Print a scenario's figures and append them to the summary file."""
    line = json.dumps({"scenario": scenario, **figures}, sort_keys=True)
    print(f"CHAOS {line}")  # noqa: T201 - the figures belong in the test output
    with SUMMARY.open("a") as out:
        out.write(line + "\n")


def psql(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection to a scenario's database (this test's reads)."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one query on the scenario's database."""
    with psql(url) as conn:
        return list(conn.execute(sql, params).fetchall())


def terminal_counts(url: str, run_ids: list[str]) -> dict[str, int]:
    """How many terminal domain events each run has (exactly one when it ended once)."""
    found = dict.fromkeys(run_ids, 0)
    for (subject,) in rows(
        url,
        "SELECT subject FROM outbox_events WHERE subject = ANY(%s) AND type = ANY(%s)",
        run_ids,
        list(TERMINAL),
    ):
        found[subject] += 1
    return found


def unfinished(url: str, run_ids: list[str]) -> list[str]:
    """The runs still pending or running."""
    return [
        r[0]
        for r in rows(
            url,
            "SELECT id FROM runs WHERE id = ANY(%s) AND status IN ('pending', 'running')",
            run_ids,
        )
    ]


def busy_threads(url: str) -> list[str]:
    """Threads held by a run (`busy`)."""
    return [r[0] for r in rows(url, "SELECT id FROM threads WHERE status = 'busy'")]


def kill9(host: DevHost) -> float:
    """SIGKILL a host and reap it; the monotonic time of the kill."""
    killed = time.monotonic()
    os.kill(host.process.pid, signal.SIGKILL)
    host.process.wait(10)
    return killed


def aclient(host: DevHost, timeout: float = 60.0) -> httpx.AsyncClient:
    """An async client of a host's API (its development key)."""
    return httpx.AsyncClient(base_url=host.base_url, headers=host.headers, timeout=timeout)


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) pairs of an SSE response, as they arrive."""
    event = "message"
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            raw = line[5:].strip()
            yield event, (json.loads(raw) if raw.startswith(("{", "[")) else raw)
            event = "message"


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 90.0) -> float:
    """Re-check an observable condition until it holds; its monotonic time. Fails after
    `seconds`, a bound far above the scenario's takeover bound, never a measured threshold."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic()


def model_env(base_url: str) -> dict[str, str]:
    """Settings that point a dev host at the loopback fake model."""
    return {
        "MODEL_PROVIDER": "compatible",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "OPENAI_API_KEY": "unused",
        "ASCENT_MAX_CONCURRENT_RUNS": "0",
    }
