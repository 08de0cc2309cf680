"""Many runs at once on one thread: one runs, the others are refused (409) or queue in order,
and no caller ever gets a 5xx. In-process over ASGI, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents.testing import ScriptedModel, assistant_message

from tests.conftest import BACKENDS
from tests.engine_support import Api, HoldModel, api_app, use_model

RUNS = 10


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


def held(monkeypatch: pytest.MonkeyPatch, answers: int) -> HoldModel:
    """Every run's model call waits at a gate the test opens; then it answers."""
    model = HoldModel(ScriptedModel([[assistant_message(f"answer {i}")] for i in range(answers)]))
    use_model(monkeypatch, model)
    return model


async def _together(calls: list[Any], model: HoldModel) -> list[httpx.Response]:
    """Start every call, wait until one reached the model and the rest were answered, open the
    gate, and collect the responses."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.wait_for(model.reached.wait(), timeout=30)
    # Every refused call is answered while the one run waits at the gate.
    pending = set(tasks)
    while len(pending) > 1:
        done, pending = await asyncio.wait(pending, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert done, "a call on the busy thread did not answer while the first one ran"
    model.release.set()
    return [await t for t in tasks]


async def test_ten_simple_runs_on_one_thread_one_runs_nine_get_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 concurrent simple-route runs on one thread: one 200, nine 409, none 5xx."""
    model = held(monkeypatch, 1)
    thread = await api.new_thread()
    body = {"input": "hello", "thread_id": thread}
    calls = [api.client.post("/agents/assistant/runs", json=body) for _ in range(RUNS)]
    codes = Counter(r.status_code for r in await _together(calls, model))
    assert codes == {200: 1, 409: RUNS - 1}
    assert model.entered == 1


async def test_ten_openai_requests_of_one_user_one_runs_nine_get_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 concurrent chat completions of one `user` (one conversation): one 200, nine 409."""
    model = held(monkeypatch, 1)
    body = {"model": "assistant", "user": "ada", "messages": [{"role": "user", "content": "hi"}]}
    calls = [api.client.post("/v1/chat/completions", json=body) for _ in range(RUNS)]
    codes = Counter(r.status_code for r in await _together(calls, model))
    assert codes == {200: 1, 409: RUNS - 1}


async def test_ten_enqueued_waits_on_one_thread_all_run_in_order(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 concurrent `/runs/wait` with multitask_strategy enqueue: all succeed, one at a time,
    in creation order; none 5xx."""
    model = held(monkeypatch, RUNS)
    model.release.set()
    thread = await api.new_thread()
    calls = [
        api.client.post(
            f"/threads/{thread}/runs/wait",
            json={"agent_id": "assistant", "input": f"turn {i}", "multitask_strategy": "enqueue"},
        )
        for i in range(RUNS)
    ]
    responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * RUNS
    assert {r.json()["run"]["status"] for r in responses} == {"success"}
    items = (await api.client.get(f"/threads/{thread}/messages")).json()["items"]
    users = [i["content"] for i in items if i.get("role") == "user"]
    runs = (await api.client.get(f"/threads/{thread}/runs", params={"limit": RUNS})).json()
    created = [r["metadata"] for r in sorted(runs, key=lambda r: r["created_at"])]
    assert len(users) == RUNS and len(created) == RUNS
    # Each run's turn follows the previous one's: the history is in the runs' creation order.
    by_run = {r["run_id"]: r for r in runs}
    order = [by_run[r.json()["run"]["run_id"]]["created_at"] for r in responses]
    assert users == [f"turn {i}" for i in sorted(range(RUNS), key=lambda i: order[i])]
