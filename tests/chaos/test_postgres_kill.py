"""Postgres connections killed mid-load: 503 with Retry-After, never 500, and self-recovery.

One dev host on a database of its own takes a steady mix of synchronous runs, background
runs and reads while this test terminates every backend of that database (and only of it:
`pg_terminate_backend` filtered on its name; the shared server is never restarted), several
times, each once requests completed since the last kill. Nobody restarts the host.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.recovery_helpers import SHORT_LEASES, aclient, psql, report, unfinished, until
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.fresh_database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]

KILLS = 4
CLIENTS = 6


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new Postgres database for this scenario (its host migrates it)."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_chaos_pg") as url:
        yield url


def terminate_backends(url: str) -> int:
    """Terminate every connection to the scenario's database but this one; how many."""
    with psql(url) as conn:
        name = conn.info.dbname
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(killed[0]) if killed else 0


def test_killed_connections_answer_503_with_retry_after_and_the_host_recovers(
    tmp_path: Path, postgres_url: str
) -> None:
    """Under load, with every database connection killed 4 times: no 500, each 503 carries
    Retry-After, every accepted background run still ends, and afterwards every request
    succeeds again without a restart."""
    # A message whose run failed is retried after 1 s, scaled down with the leases.
    env = {
        **SHORT_LEASES,
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    }
    host = start_devhost(tmp_path / "host", database_url=postgres_url, extra_env=env)
    try:
        asyncio.run(_scenario(host, postgres_url))
    finally:
        host.stop()


async def _scenario(host: DevHost, url: str) -> None:
    codes: Counter[int] = Counter()
    missing_retry_after = 0
    accepted: list[str] = []
    completed = 0
    stop = asyncio.Event()

    async def call(c: httpx.AsyncClient, i: int) -> None:
        nonlocal missing_retry_after, completed
        kind = i % 3
        if kind == 0:
            r = await c.post("/agents/assistant/runs", json={"input": f"what is {i} * 2?"})
        elif kind == 1:
            r = await c.post("/runs", json={"agent_id": "assistant", "input": f"hi {i}"})
            if r.status_code == 200:
                accepted.append(str(r.json()["run_id"]))
        else:
            r = await c.post("/threads/search", json={"limit": 5})
        codes[r.status_code] += 1
        completed += 1
        if r.status_code == 503 and not r.headers.get("retry-after"):
            missing_retry_after += 1

    async def client_loop(n: int) -> None:
        async with aclient(host) as c:
            i = n
            while not stop.is_set():
                await call(c, i)
                i += CLIENTS

    loops = [asyncio.ensure_future(client_loop(n)) for n in range(CLIENTS)]
    terminated = 0
    last_kill = time.monotonic()
    try:
        for _ in range(KILLS):
            seen = completed

            async def progressed(since: int = seen) -> bool:
                return completed >= since + 2 * CLIENTS

            await until(progressed, "requests to complete since the last kill")
            terminated += terminate_backends(url)
            last_kill = time.monotonic()
        seen = completed
        await until(lambda: _async_true(completed >= seen + 2 * CLIENTS), "requests after")
    finally:
        stop.set()
        await asyncio.gather(*loops)

    assert codes[500] == 0, codes
    assert set(codes) <= {200, 503}, codes
    assert missing_retry_after == 0

    async def accepted_ended() -> bool:
        return not unfinished(url, accepted)

    recovered = await until(accepted_ended, "every accepted background run to end")
    # Recovered by itself: a fresh round of each kind answers 200.
    after: Counter[int] = Counter()
    async with aclient(host) as c:
        for i in range(3):
            r = await (
                c.post("/agents/assistant/runs", json={"input": "2 * 3?"})
                if i == 0
                else c.post("/runs", json={"agent_id": "assistant", "input": "hi"})
                if i == 1
                else c.post("/threads/search", json={"limit": 5})
            )
            after[r.status_code] += 1
    assert after == {200: 3}, after
    report(
        "postgres_kill",
        requests=sum(codes.values()),
        kills=KILLS,
        backends_terminated=terminated,
        status_codes=dict(codes),
        five_xx=codes[500] + codes[503],
        five_hundreds=codes[500],
        background_runs=len(accepted),
        recovery_after_last_kill_s=round(recovered - last_kill, 2),
    )


async def _async_true(value: bool) -> bool:
    return value
