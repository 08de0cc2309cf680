"""Following a run this instance holds but has not started: the follower waits for the run's
first event in-process and does not re-read the database in a loop. In-process over ASGI, on
SQLite (whose reads run on the event loop, so a spinning follower would starve the executor)
and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.runs import live as live_runs
from shared.runs import service, watch
from tests.conftest import BACKENDS
from tests.engine_support import Api, api_app, sse_events


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The in-process API on SQLite, then on Postgres."""
    cache = tmp_path_factory.getbasetemp() / "engine-template"
    cache.mkdir(exist_ok=True)
    async with api_app(request.param, monkeypatch, tmp_path, cache) as app:
        yield app


async def test_a_stream_on_a_deferred_run_waits_without_re_reading_and_ends_on_cancel(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A joined stream of a run held here until `after_seconds` reads the log once, then waits;
    cancelling the run ends the stream with the run's `end`."""
    registered = asyncio.Event()
    real_register = service.register

    def register(live: live_runs.LiveRun) -> None:
        real_register(live)
        registered.set()

    monkeypatch.setattr(service, "register", register)
    reads = 0
    read_once = asyncio.Event()
    real_read_events = watch.read_events

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        read_once.set()
        return real_read_events(*args, **kwargs)

    monkeypatch.setattr(watch, "read_events", counted)

    thread = await api.new_thread()
    body = {"agent_id": "assistant", "input": "later", "after_seconds": 3600}
    created = await api.client.post(f"/threads/{thread}/runs", json=body)
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    await asyncio.wait_for(registered.wait(), timeout=30)
    assert live_runs.live_run(run_id) is not None

    async def joined() -> list[tuple[str, Any]]:
        url = f"/threads/{thread}/runs/{run_id}/stream"
        async with api.client.stream("GET", url) as response:
            assert response.status_code == 200
            return list(sse_events((await response.aread()).decode()))

    stream = asyncio.ensure_future(joined())
    await asyncio.wait_for(read_once.wait(), timeout=30)
    cancelled = await api.client.post(f"/threads/{thread}/runs/{run_id}/cancel")
    assert cancelled.status_code in (200, 202, 204), cancelled.text
    events = await asyncio.wait_for(stream, timeout=30)
    assert events[-1][0] == "end"
    assert reads <= 3, f"the follower re-read the log {reads} times while the run waited"
