"""kill -9 of a host mid-load, a second host running: everything it held is taken over.

Host A executes background runs (two per thread, so one waits, claimed, behind the other),
a simple-route run, `/runs/wait`, `/runs/stream`, and OpenAI chat completions (plain and
streamed) on a slow loopback model, host B runs beside it; A is killed with SIGKILL. With
short leases (run and message lease 4 s, heartbeat and sweep derived as by default) and the
stale-pending sweep at its 15-minute default, only the heartbeat recovery can end the runs
within the wait: every run ends exactly once, no thread stays busy, and the OpenAI
conversation A was answering goes on, on B. Nobody but the hosts sweeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.fake_model import running_fake_model, stats
from tests.chaos.recovery_helpers import (
    SHORT_LEASES,
    TAKEOVER_BOUND,
    aclient,
    busy_threads,
    kill9,
    model_env,
    report,
    rows,
    terminal_counts,
    unfinished,
    until,
)
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.fresh_database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]

SYNC_ENTRIES = ("agents", "wait", "stream", "openai", "openai-stream")
BACKGROUND_THREADS = 3


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new Postgres database for this scenario (its hosts migrate it)."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_chaos_kill") as url:
        yield url


async def _start_on(c: httpx.AsyncClient, entry: str, thread_id: str) -> int:
    """Start a run of `entry` on a thread, reading its answer; the status (0: the host died)."""
    chat = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
    try:
        if entry == "agents":
            r = await c.post("/agents/assistant/runs", json={"input": "hi", "thread_id": thread_id})
        elif entry in ("wait", "stream"):
            r = await c.post(f"/threads/{thread_id}/runs/{entry}", json={"input": "hi"})
        else:
            r = await c.post(
                "/v1/chat/completions",
                json={**chat, "stream": entry == "openai-stream"},
                headers={"X-Ascent-Thread-Id": thread_id},
            )
    except httpx.TransportError:
        return 0
    return r.status_code


def test_a_killed_hosts_runs_and_messages_are_taken_over_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """After kill -9 of host A, host B's heartbeat sweep takes over A's running runs, the
    pending runs A's receivers waited on and A's messages: each run ends exactly once, every
    thread is free, and no request to B answers 5xx."""
    with running_fake_model(latency=4.0) as model:
        env = {**model_env(model), **SHORT_LEASES}
        a = start_devhost(tmp_path / "a", database_url=postgres_url, extra_env=env)
        b = start_devhost(tmp_path / "b", database_url=postgres_url, extra_env=env)
        try:
            asyncio.run(_scenario(a, b, model, postgres_url))
        finally:
            a.stop()
            b.stop()


async def _scenario(a: DevHost, b: DevHost, model: str, url: str) -> None:
    async with aclient(a) as on_a, aclient(b) as on_b:
        sync_threads = {
            e: (await on_b.post("/threads", json={})).json()["thread_id"] for e in SYNC_ENTRIES
        }
        background: list[str] = []
        for _ in range(BACKGROUND_THREADS):
            thread = (await on_b.post("/threads", json={})).json()["thread_id"]
            for _ in range(2):
                created = await on_a.post(
                    f"/threads/{thread}/runs",
                    json={"input": "hi", "multitask_strategy": "enqueue"},
                )
                assert created.status_code == 200, created.text
                background.append(created.json()["run_id"])
        calls = [asyncio.ensure_future(_start_on(on_a, e, t)) for e, t in sync_threads.items()]
        total = len(SYNC_ENTRIES) + 2 * BACKGROUND_THREADS

        async def all_held() -> bool:
            # Every run exists and was received (running, or pending under a receiver's
            # claim, waiting behind its thread's first run), and every sync run waits on the
            # model: A is killed mid-answer.
            states = rows(
                url,
                "SELECT count(*),"
                " count(*) FILTER (WHERE status = 'pending' AND lease_owner IS NULL),"
                " count(*) FILTER (WHERE status = 'running' AND thread_id = ANY(%s)) FROM runs",
                list(sync_threads.values()),
            )[0]
            return states == (total, 0, len(SYNC_ENTRIES))

        await until(all_held, "every run to be running or claimed")
        assert stats(model)["in_flight"] >= 1
        killed = kill9(a)
        await asyncio.gather(*calls)
        run_ids = [r[0] for r in rows(url, "SELECT id FROM runs")]
        at_kill = len(unfinished(url, run_ids))
        five_xx = 0

        async def all_ended() -> bool:
            nonlocal five_xx
            # B keeps serving meanwhile: a read of every run answers, never 5xx.
            answers = await asyncio.gather(*(on_b.get(f"/runs/{r}") for r in run_ids[:4]))
            five_xx += sum(1 for r in answers if r.status_code >= 500)
            return not unfinished(url, run_ids) and not busy_threads(url)

        ended = await until(all_ended, "every run to end and every thread to be free")
        counts = terminal_counts(url, run_ids)
        assert counts == dict.fromkeys(run_ids, 1), counts
        assert busy_threads(url) == []
        assert five_xx == 0
        # The OpenAI conversation A was answering goes on, on B.
        retried = await on_b.post(
            "/v1/chat/completions",
            json={"model": "assistant", "messages": [{"role": "user", "content": "again?"}]},
            headers={"X-Ascent-Thread-Id": sync_threads["openai"]},
        )
        assert retried.status_code == 200, retried.text
        statuses = dict(rows(url, "SELECT status, count(*) FROM runs GROUP BY status"))
        report(
            "kill_host",
            runs=len(run_ids),
            kills=1,
            recoveries=at_kill,
            longest_recovery_s=round(ended - killed, 2),
            takeover_bound_s=TAKEOVER_BOUND,
            statuses=statuses,
            five_xx=five_xx,
            measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
