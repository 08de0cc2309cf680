"""Agent Protocol streaming: persisted SSE events, resume with Last-Event-ID, the LangGraph SDK,
and a second dev host instance joining a run started on the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.e2e.protocol_helpers import Event, new_thread, sse_events, strip_ids, wait_status

REFUND = "I want a refund of 40 after 12 days"
ALL_MODES = ["values", "messages", "updates"]


def stream(devhost: DevHost, thread_id: str, text: str) -> list[Event]:
    """Create a run on the thread and read its whole stream."""
    with (
        devhost.client() as client,
        client.stream(
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={"assistant_id": "triage", "input": text, "stream_mode": ALL_MODES},
        ) as response,
    ):
        assert response.status_code == 200
        return list(sse_events(response))


def user_input(text: str) -> Any:
    """LangGraph-style input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def comparable(events: list[Event]) -> list[tuple[str, object]]:
    """Event names and data without ids, for comparing two runs' streams."""
    return [(e.event, strip_ids(e.data)) for e in events]


def test_stream_sends_tokens_tools_handoff_and_end(devhost: DevHost) -> None:
    """A streamed run sends metadata, token deltas, tool calls and results, a handoff, end."""
    with devhost.client() as client:
        thread_id = new_thread(client)
    events = stream(devhost, thread_id, REFUND)
    names = [e.event for e in events]
    assert names[0] == "metadata" and names[-1] == "end"
    assert "messages" in names
    updates = [e.data for e in events if e.event == "updates"]
    assert any("handoff" in u.get("triage", {}) for u in updates)
    assert any(
        m.get("role") == "tool" for u in updates for v in u.values() for m in v.get("messages", [])
    )
    assert events[-1].data["status"] == "success"
    assert all(e.id is not None for e in events)


def test_resume_with_last_event_id_equals_uninterrupted(devhost: DevHost) -> None:
    """Disconnecting mid-stream and resuming with Last-Event-ID loses and repeats nothing."""
    with devhost.client() as client:
        whole = stream(devhost, new_thread(client), REFUND)
        thread_id = new_thread(client)
        with client.stream(
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "triage",
                "input": REFUND,
                "stream_mode": ALL_MODES,
                "on_disconnect": "continue",
            },
        ) as response:
            iterator = sse_events(response)
            head = [next(iterator) for _ in range(3)]
        run_id = head[0].data["run_id"]
        with client.stream(
            "GET",
            f"/threads/{thread_id}/runs/{run_id}/stream",
            headers={"Last-Event-ID": str(head[-1].id)},
        ) as response:
            tail = list(sse_events(response))
    assert comparable(head + tail) == comparable(whole)


def test_join_stream_replays_a_finished_run(devhost: DevHost) -> None:
    """GET /runs/{id}/stream of a finished run replays its persisted events with the same ids."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        live = stream(devhost, thread_id, "my name is Ada")
        run_id = live[0].data["run_id"]
        with client.stream("GET", f"/runs/{run_id}/stream") as response:
            replay = list(sse_events(response))
    assert [(e.id, e.event, e.data) for e in replay] == [(e.id, e.event, e.data) for e in live]


def test_langgraph_sdk_threads_wait_and_stream(devhost: DevHost) -> None:
    """The official langgraph-sdk client creates a thread, waits on a run and streams one."""
    client = get_sync_client(
        url=devhost.base_url, headers={"Authorization": f"Bearer {devhost.api_key}"}
    )
    thread = client.threads.create(metadata={"via": "langgraph-sdk"})
    result = client.runs.wait(
        thread["thread_id"],
        "triage",
        input=user_input("my name is Ada"),
    )
    assert isinstance(result, dict)
    assert result["messages"][-1]["content"] == "Noted: your name is Ada."
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            "triage",
            input=user_input("what is my name?"),
            stream_mode=["values", "messages-tuple"],
        )
    )
    assert parts[0].event == "metadata"
    assert parts[-1].event == "end"
    final = [p.data for p in parts if p.event == "values"][-1]
    assert final["messages"][-1]["content"] == "Your name is Ada."
    assert client.threads.get(thread["thread_id"])["status"] == "idle"


@pytest.fixture
def second_host(devhost: DevHost, request: pytest.FixtureRequest) -> Iterator[DevHost]:
    """Another dev host process on the same data dir and database as `devhost`, same key."""
    backend = request.node.callspec.params.get("devhost")
    host = start_devhost(
        devhost.log_path.parent,
        database_url=POSTGRES_URL if backend == "postgres" else None,
        extra_env={"ASCENT_DEV_API_KEY": devhost.api_key},
    )
    yield host
    host.stop()


def test_second_instance_joins_and_cancels_a_run(devhost: DevHost, second_host: DevHost) -> None:
    """A run held on instance one is joined and cancelled from instance two, which sees the end."""
    with devhost.client() as one, second_host.client(devhost.api_key) as two:
        thread_id = new_thread(one)
        run_id = one.post(
            f"/threads/{thread_id}/runs", json={"input": "later", "after_seconds": 3600}
        ).json()["run_id"]
        with two.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response:
            events = sse_events(response)
            assert next(events).event == "metadata"
            assert two.post(f"/runs/{run_id}/cancel").status_code == 200
            rest = list(events)
        assert rest[-1].event == "end" and rest[-1].data["status"] == "interrupted"
        assert wait_status(one, run_id, "interrupted") == "interrupted"


def test_second_instance_streams_a_run_of_the_first(devhost: DevHost, second_host: DevHost) -> None:
    """Instance two replays the full stream of a run executed on instance one."""
    with devhost.client() as one, second_host.client(devhost.api_key) as two:
        thread_id = new_thread(one)
        live = stream(devhost, thread_id, REFUND)
        run_id = live[0].data["run_id"]
        with two.stream("GET", f"/runs/{run_id}/stream") as response:
            replay = list(sse_events(response))
    assert [(e.id, e.event, e.data) for e in replay] == [(e.id, e.event, e.data) for e in live]
