"""The run engine across real processes: load, pushes between instances, and a killed host.

- 300 concurrent synchronous runs on the embedded default (one dev host, SQLite): no 5xx.
- Two dev hosts on one Postgres, with the poll fallback set to a minute: the second streams,
  waits on and cancels runs the first executes, pushed through LISTEN/NOTIFY.
- `kill -9` of a host while a run of every entry point is mid-answer, with a second host
  running: every run ends exactly once, its thread is free again, and a retried OpenAI
  conversation answers.

The model is bench/fake_model.py, a loopback OpenAI-compatible server whose answers take a set
time, so runs are observably in flight; each Postgres test gets a database of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from bench.fake_model import running_fake_model, stats
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.fresh_database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def model_env(base_url: str) -> dict[str, str]:
    """Settings that point a dev host at the fake model."""
    return {
        "MODEL_PROVIDER": "compatible",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "OPENAI_API_KEY": "unused",
        "ASCENT_MAX_CONCURRENT_RUNS": "0",
    }


def client(host: DevHost, timeout: float = 30.0) -> httpx.AsyncClient:
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


# --- load ------------------------------------------------------------------------------------


def test_300_concurrent_sync_runs_on_the_embedded_default_get_no_5xx(tmp_path: Path) -> None:
    """300 simple-route runs at once on one host with SQLite: every one answers, none 5xx."""
    host = start_devhost(tmp_path / "data", extra_env={"ASCENT_MAX_CONCURRENT_RUNS": "0"})
    try:

        async def load() -> Counter[int]:
            clients = [client(host, timeout=120) for _ in range(30)]
            try:
                calls = [
                    clients[i % len(clients)].post(
                        "/agents/assistant/runs", json={"input": f"hello number {i}"}
                    )
                    for i in range(300)
                ]
                return Counter(r.status_code for r in await asyncio.gather(*calls))
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))

        codes = asyncio.run(load())
        assert codes == {200: 300}, host.log_tail()
    finally:
        host.stop()


# --- two instances on Postgres -----------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new Postgres database for this test (its hosts migrate it)."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_engine") as url:
        yield url


@pytest.mark.postgres
def test_a_second_instance_streams_waits_on_and_cancels_without_polling(
    tmp_path: Path, postgres_url: str
) -> None:
    """With the poll fallback at a minute, host B follows, waits on and cancels runs host A
    executes: each answer arrives while a poll-only B would still be waiting (its client gives
    up after 30 s), because A's changes reach B through LISTEN/NOTIFY."""
    slow = {"ASCENT_RUN_POLL_SECONDS": "60", "ASCENT_STREAM_KEEPALIVE_SECONDS": "60"}
    with running_fake_model(latency=0.3, token_interval=0.3) as model:
        env = {**model_env(model), **slow}
        a = start_devhost(tmp_path / "a", database_url=postgres_url, extra_env=env)
        b = start_devhost(tmp_path / "b", database_url=postgres_url, extra_env=env)
        try:
            asyncio.run(_stream_wait_cancel_across(a, b))
        finally:
            a.stop()
            b.stop()


@pytest.mark.parametrize("channel", ["redis", "poll"])
def test_hosts_sharing_one_sqlite_file_follow_each_others_runs(
    tmp_path: Path, channel: str
) -> None:
    """Two hosts on one SQLite file: B streams, waits on and cancels runs A executes, pushed
    through Redis pub/sub when REDIS_URL is set (the poll fallback at a minute), else through
    the poll fallback (ASCENT_RUN_POLL_SECONDS) — the one case that polls."""
    if channel == "redis":
        env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "ASCENT_RUN_POLL_SECONDS": "60"}
    else:
        env = {"ASCENT_RUN_POLL_SECONDS": "0.2"}
    env["ASCENT_STREAM_KEEPALIVE_SECONDS"] = "60"
    shared = tmp_path / "shared"
    with running_fake_model(latency=0.3, token_interval=0.3) as model:
        a = start_devhost(shared, extra_env={**model_env(model), **env})
        b = start_devhost(shared, extra_env={**model_env(model), **env})
        try:
            asyncio.run(_stream_wait_cancel_across(a, b))
        finally:
            a.stop()
            b.stop()


async def _started_stream(
    host: DevHost, thread_id: str
) -> tuple[str, asyncio.Task[list[tuple[str, Any]]]]:
    """Start a streamed run on `host`; its run id (from `metadata`) and the task reading it."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> list[tuple[str, Any]]:
        seen: list[tuple[str, Any]] = []
        async with (
            client(host) as c,
            c.stream(
                "POST",
                f"/threads/{thread_id}/runs/stream",
                json={"agent_id": "assistant", "input": "tell me", "stream_mode": ["messages"]},
            ) as response,
        ):
            async for event, data in sse(response):
                seen.append((event, data))
                if event == "metadata" and not ready.done():
                    ready.set_result(str(data["run_id"]))
        return seen

    task = asyncio.ensure_future(read())
    return await asyncio.wait_for(ready, timeout=30), task


async def _stream_wait_cancel_across(a: DevHost, b: DevHost) -> None:
    async with client(a) as on_a, client(b) as on_b:
        # B joins a stream A executes and receives its tokens through to `end`.
        thread = (await on_a.post("/threads", json={})).json()["thread_id"]
        run_id, a_stream = await _started_stream(a, thread)
        joined: list[tuple[str, Any]] = []
        async with on_b.stream("GET", f"/threads/{thread}/runs/{run_id}/stream") as response:
            async for event, data in sse(response):
                joined.append((event, data))
                if event == "messages" and len(joined) == 2:
                    # B has a token while A is still producing the answer.
                    assert (await on_a.get(f"/runs/{run_id}")).json()["status"] == "running"
        await a_stream
        assert [e for e, _ in joined].count("messages") >= 2
        assert joined[-1] == ("end", {"run_id": run_id, "status": "success"})

        # B waits on a run A executes: the wait returns when A ends it.
        thread = (await on_a.post("/threads", json={})).json()["thread_id"]
        run_id, a_stream = await _started_stream(a, thread)
        waited = await on_b.get(f"/runs/{run_id}/wait")
        assert waited.json()["run"]["status"] == "success"
        await a_stream

        # B cancels a run A executes: A's executor hears it and stops.
        thread = (await on_a.post("/threads", json={})).json()["thread_id"]
        run_id, a_stream = await _started_stream(a, thread)
        cancelled = await on_b.post(f"/runs/{run_id}/cancel", params={"wait": "true"})
        assert cancelled.status_code in (200, 202)
        events = await asyncio.wait_for(a_stream, timeout=30)
        assert events[-1] == ("end", {"run_id": run_id, "status": "interrupted"})
        run = (await on_b.get(f"/runs/{run_id}")).json()
        assert (run["status"], run["cancel_reason"]) == ("interrupted", "cancelled")


# --- a killed host ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_killing_a_host_mid_run_ends_every_run_once_and_frees_its_thread(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of host A while a run of every entry point waits on its model, host B running:
    after the lease window and a sweep, every run has exactly one outcome, no thread is held,
    and the OpenAI conversation A was answering answers on B."""
    with running_fake_model(latency=4.0) as model:
        env = {
            **model_env(model),
            "ASCENT_RUN_LEASE_SECONDS": "2",
            "ASCENT_QUEUE_MESSAGE_LEASE_SECONDS": "2",
        }
        a = start_devhost(tmp_path / "a", database_url=postgres_url, extra_env=env)
        b = start_devhost(tmp_path / "b", database_url=postgres_url, extra_env=env)
        try:
            monkeypatch.setenv("DATABASE_URL", postgres_url)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            from shared.core.settings import get_settings

            get_settings.cache_clear()
            asyncio.run(_kill_mid_run(a, b, model))
        finally:
            a.stop()
            b.stop()


ENTRY_POINTS = ("agents", "wait", "stream", "background", "openai", "openai-stream")


async def _start_on(c: httpx.AsyncClient, entry: str, thread_id: str) -> None:
    """Start a run of `entry` on a thread; the call dies with the host."""
    chat = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
    if entry == "agents":
        await c.post("/agents/assistant/runs", json={"input": "hi", "thread_id": thread_id})
    elif entry in ("wait", "stream"):
        await c.post(f"/threads/{thread_id}/runs/{entry}", json={"input": "hi"})
    elif entry == "background":
        await c.post(f"/threads/{thread_id}/runs", json={"input": "hi"})
    else:
        headers = {"X-Ascent-Thread-Id": thread_id}
        await c.post(
            "/v1/chat/completions",
            json={**chat, "stream": entry == "openai-stream"},
            headers=headers,
        )


async def _kill_mid_run(a: DevHost, b: DevHost, model: str) -> None:
    from shared.db.engine import db_session
    from shared.db.event_models import OutboxEvent
    from shared.db.models import Run, Thread
    from shared.runs.service import sweep

    async with client(a, timeout=120) as on_a, client(b) as on_b:
        threads = {
            e: (await on_b.post("/threads", json={})).json()["thread_id"] for e in ENTRY_POINTS
        }
        calls = [asyncio.ensure_future(_start_on(on_a, e, t)) for e, t in threads.items()]

        async def all_waiting_on_the_model() -> bool:
            async with db_session() as db:
                running = (
                    await db.exec(
                        select(Run.id).where(
                            col(Run.thread_id).in_(list(threads.values())),
                            col(Run.status) == "running",
                        )
                    )
                ).all()
            return len(running) == len(ENTRY_POINTS) and stats(model)["in_flight"] >= 1

        await _until(all_waiting_on_the_model, "every run to be waiting on its model")
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait(10)
        await asyncio.gather(*calls, return_exceptions=True)

        async def all_ended() -> bool:
            await sweep()  # what the sweep_leases job does every minute
            async with db_session() as db:
                statuses = (await db.exec(select(Run.status))).all()
            return all(s not in ("pending", "running") for s in statuses)

        await _until(all_ended, "every run to end after the lease lapsed")
        async with db_session() as db:
            runs = list((await db.exec(select(Run))).all())
            for run in runs:
                terminal = (
                    await db.exec(
                        select(OutboxEvent.type).where(
                            col(OutboxEvent.subject) == run.id,
                            col(OutboxEvent.type).in_(
                                ["run.completed", "run.failed", "run.cancelled"]
                            ),
                        )
                    )
                ).all()
                assert len(terminal) == 1, (run.entry_point, run.status, terminal)
            held = (await db.exec(select(Thread.id).where(col(Thread.status) == "busy"))).all()
        assert held == []
        assert len(runs) == len(ENTRY_POINTS)
        # The OpenAI conversation A was answering goes on, on B.
        retried = await on_b.post(
            "/v1/chat/completions",
            json={"model": "assistant", "messages": [{"role": "user", "content": "again?"}]},
            headers={"X-Ascent-Thread-Id": threads["openai"]},
            timeout=60,
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["choices"][0]["message"]["content"]


async def _until(check: Any, what: str, seconds: float = 90.0) -> None:
    """Re-check an observable condition until it holds; fail with `what` after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
