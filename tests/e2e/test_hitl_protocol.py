"""Agent Protocol clients resume an interrupted run with LangGraph's `command: {"resume": ...}`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.conftest import DevHost
from tests.e2e.hitl_helpers import (
    REFUND_REQUEST,
    backend_of,
    host_database_url,
    refunds_of,
    start_paused_run,
)
from tests.e2e.protocol_helpers import new_thread, sse_events

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devhost: DevHost) -> Iterator[httpx.Client]:
    """An authenticated client of the module's dev host."""
    with devhost.client() as c:
        yield c


def test_langgraph_sdk_approves_an_interrupt_by_id(
    devhost: DevHost, request: pytest.FixtureRequest
) -> None:
    """The langgraph-sdk client sees `__interrupt__`, resumes it by id and gets the refund."""
    sdk = get_sync_client(
        url=devhost.base_url, headers={"Authorization": f"Bearer {devhost.api_key}"}
    )
    thread_id = sdk.threads.create()["thread_id"]
    message: Any = {"messages": [{"role": "user", "content": REFUND_REQUEST}]}
    paused: Any = sdk.runs.wait(thread_id, "billing", input=message)
    interrupts = paused["__interrupt__"]
    assert [i["value"]["tool"] for i in interrupts] == ["issue_refund"]
    assert sdk.threads.get(thread_id)["status"] == "interrupted"
    resume = {interrupts[0]["id"]: {"decision": "approve", "comment": "via sdk"}}
    done: Any = sdk.runs.wait(thread_id, "billing", command={"resume": resume})
    assert done["run"]["status"] == "success"
    assert done["messages"][-1]["content"].startswith("Refund of 40.00 issued")
    assert sdk.threads.get(thread_id)["status"] == "idle"
    url = host_database_url(devhost, backend_of(request))
    assert refunds_of(url, done["run"]["run_id"]) == 1


def test_plain_http_reject_resumes_the_same_run(client: httpx.Client) -> None:
    """POST /threads/{id}/runs with `command.resume = "reject"` resumes the paused run itself."""
    run = start_paused_run(client)
    resumed = client.post(
        f"/threads/{run['thread_id']}/runs/wait", json={"command": {"resume": "reject"}}
    )
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["run"]["run_id"] == run["run_id"]
    assert (body["run"]["status"], "not approved" in body["output"]) == ("success", True)


def test_streamed_resume_sends_only_the_resumed_part(client: httpx.Client) -> None:
    """A streamed resume starts after the pause's events and ends with the run's success."""
    run = start_paused_run(client)
    with client.stream(
        "POST",
        f"/threads/{run['thread_id']}/runs/stream",
        json={"command": {"resume": {"decision": "approve"}}, "stream_mode": ["values"]},
    ) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert events[-1].event == "end" and events[-1].data["status"] == "success"
    assert all("__interrupt__" not in (e.data or {}) for e in events if e.event == "values")
    final = [e.data for e in events if e.event == "values"][-1]
    assert final["messages"][-1]["content"].startswith("Refund of 40.00 issued")


def test_resume_without_an_interrupted_run_is_409(client: httpx.Client) -> None:
    """A resume on a thread with nothing to resume is 409."""
    thread_id = new_thread(client)
    answer = client.post(f"/threads/{thread_id}/runs", json={"command": {"resume": "approve"}})
    assert answer.status_code == 409, answer.text


def test_resume_naming_an_unknown_interrupt_is_422(client: httpx.Client) -> None:
    """A resume map naming no pending interrupt of the thread is rejected; nothing is decided."""
    run = start_paused_run(client)
    resume = {"00000000-0000-4000-8000-000000000000": {"decision": "approve"}}
    answer = client.post(f"/threads/{run['thread_id']}/runs", json={"command": {"resume": resume}})
    assert answer.status_code == 422, answer.text
    assert client.get(f"/runs/{run['run_id']}").json()["status"] == "interrupted"
