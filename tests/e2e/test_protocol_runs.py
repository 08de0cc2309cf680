"""Agent Protocol runs over real HTTP: background runs, wait, search, multitask, cancel."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import DevHost
from tests.e2e.protocol_helpers import new_thread, sse_events, wait_status

PROBLEM = "application/problem+json"
# A run scheduled this far ahead stays pending and holds its thread: observable, no timing.
FAR = 3600


def hold_thread(client: httpx.Client, thread_id: str) -> str:
    """Start a run that holds the thread (scheduled far ahead); return its id."""
    response = client.post(
        f"/threads/{thread_id}/runs", json={"input": "later", "after_seconds": FAR}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def test_background_run_ends_in_success(devhost: DevHost) -> None:
    """POST /runs returns a pending run at once; it then ends in success with output."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        created = client.post("/runs", json={"thread_id": thread_id, "input": "my name is Ada"})
        assert created.status_code == 200, created.text
        run_id = created.json()["run_id"]
        assert wait_status(client, run_id, "success", "error") == "success"
        run = client.get(f"/runs/{run_id}").json()
        thread = client.get(f"/threads/{thread_id}").json()
    assert run["output"] == "Noted: your name is Ada."
    assert thread["status"] == "idle"


def test_runs_wait_returns_messages(devhost: DevHost) -> None:
    """POST /runs/wait (stateless) returns the run and the final messages."""
    with devhost.client() as client:
        body = client.post(
            "/runs/wait",
            json={
                "agent_id": "assistant",
                "input": {"messages": [{"role": "user", "content": "hi"}]},
            },
        ).json()
    assert body["run"]["status"] == "success"
    assert body["messages"][0] == {"role": "user", "type": "human", "content": "hi"}
    assert body["messages"][-1]["role"] == "assistant"


def test_stateless_run_deletes_its_thread(devhost: DevHost) -> None:
    """A stateless run with the default on_completion=delete leaves no thread behind."""
    with devhost.client() as client:
        body = client.post("/runs/wait", json={"input": "hello"}).json()
        run = client.get(f"/runs/{body['run']['run_id']}").json()
    assert run["status"] == "success"
    assert run["thread_id"] is None


def test_get_run_wait_after_background_run(devhost: DevHost) -> None:
    """GET /runs/{id}/wait blocks until the run ends and returns its output."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        run_id = client.post("/runs", json={"thread_id": thread_id, "input": "hello"}).json()[
            "run_id"
        ]
        body = client.get(f"/runs/{run_id}/wait").json()
    assert body["run"]["status"] == "success"
    assert body["output"].startswith("You said")


def test_runs_search_and_thread_list(devhost: DevHost) -> None:
    """POST /runs/search and GET /threads/{id}/runs find the thread's runs, newest first."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        ids = [
            client.post(f"/threads/{thread_id}/runs/wait", json={"input": t}).json()["run"][
                "run_id"
            ]
            for t in ("one", "two")
        ]
        searched = client.post("/runs/search", json={"thread_id": thread_id}).json()
        listed = client.get(f"/threads/{thread_id}/runs").json()
    assert [r["run_id"] for r in searched] == ids[::-1]
    assert [r["run_id"] for r in listed] == ids[::-1]


def test_delete_finished_run(devhost: DevHost) -> None:
    """DELETE /runs/{id} removes a finished run; it is then 404."""
    with devhost.client() as client:
        run_id = client.post("/runs/wait", json={"input": "x"}).json()["run"]["run_id"]
        deleted = client.delete(f"/runs/{run_id}")
        after = client.get(f"/runs/{run_id}")
    assert deleted.status_code == 204
    assert after.status_code == 404


def test_busy_thread_rejects_second_run(devhost: DevHost) -> None:
    """With multitask_strategy=reject, a run for a busy thread is refused with 409."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        holder = hold_thread(client, thread_id)
        second = client.post(f"/threads/{thread_id}/runs", json={"input": "now"})
        thread = client.get(f"/threads/{thread_id}").json()
        client.post(f"/runs/{holder}/cancel")
    assert thread["status"] == "busy"
    assert second.status_code == 409
    assert second.headers["content-type"] == PROBLEM


def test_enqueued_run_waits_then_succeeds(devhost: DevHost) -> None:
    """With enqueue, a run stays pending while the thread is held and runs once it is free."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        holder = hold_thread(client, thread_id)
        queued = client.post(
            f"/threads/{thread_id}/runs", json={"input": "queued", "multitask_strategy": "enqueue"}
        ).json()["run_id"]
        assert client.get(f"/runs/{queued}").json()["status"] == "pending"
        client.post(f"/runs/{holder}/cancel")
        assert wait_status(client, queued, "success", "error") == "success"


def test_enqueued_runs_run_in_order(devhost: DevHost) -> None:
    """Enqueued runs on one thread all succeed, in creation order."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        holder = hold_thread(client, thread_id)
        texts = [f"message {i}" for i in range(3)]
        ids = [
            client.post(
                f"/threads/{thread_id}/runs", json={"input": t, "multitask_strategy": "enqueue"}
            ).json()["run_id"]
            for t in texts
        ]
        client.post(f"/runs/{holder}/cancel")
        for run_id in ids:
            assert wait_status(client, run_id, "success", "error") == "success"
        messages = client.get(f"/threads/{thread_id}").json()["messages"]
    # The cancelled holder never started, so its input never reached the conversation.
    assert [m["content"] for m in messages if m["role"] == "user"] == texts


def test_cancel_pending_run_ends_interrupted(devhost: DevHost) -> None:
    """Cancelling a pending run ends it interrupted (reason cancelled) and frees the thread."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        run_id = hold_thread(client, thread_id)
        cancelled = client.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
        run = client.get(f"/runs/{run_id}").json()
        thread = client.get(f"/threads/{thread_id}").json()
        again = client.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert (run["status"], run["cancel_reason"]) == ("interrupted", "cancelled")
    assert thread["status"] == "idle"
    assert again.status_code == 409


def test_stream_disconnect_cancels_run(devhost: DevHost) -> None:
    """A client leaving a stream with on_disconnect=cancel cancels its run."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        with client.stream(
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={"input": "bye", "after_seconds": FAR, "on_disconnect": "cancel"},
        ) as response:
            first = next(sse_events(response))
        run_id = first.data["run_id"]
        assert wait_status(client, run_id, "interrupted") == "interrupted"


def test_stream_disconnect_continue_keeps_run(devhost: DevHost) -> None:
    """With on_disconnect=continue, leaving the stream does not cancel the run."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        with client.stream(
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={"input": "stay", "after_seconds": FAR, "on_disconnect": "continue"},
        ) as response:
            run_id = next(sse_events(response)).data["run_id"]
        # The cancel below is observable only if the run was still pending when it arrived.
        cancelled = client.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code == 200


def test_run_bad_input_is_a_4xx_problem(devhost: DevHost) -> None:
    """Invalid run requests answer 4xx problem+json, never 5xx."""
    thread = str(uuid.uuid4())
    with devhost.client() as client:
        answers = [
            client.post("/runs", json={"input": ""}),
            client.post("/runs", json={"input": {"foo": 1}}),
            client.post("/runs", json={"input": "x", "agent_id": "nope"}),
            client.post("/runs", json={"input": "x", "thread_id": thread}),
            client.post("/runs", json={"input": "x", "multitask_strategy": "bogus"}),
            client.post("/runs/stream", json={"input": "x", "stream_mode": "bogus"}),
            client.get(f"/runs/{uuid.uuid4()}"),
            client.get("/runs/not-a-uuid/stream"),
        ]
    assert [a.status_code for a in answers] == [422, 422, 404, 404, 422, 422, 404, 404]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)


def test_if_not_exists_create_makes_the_thread(devhost: DevHost) -> None:
    """if_not_exists=create runs on a new thread with the given id."""
    thread_id = str(uuid.uuid4())
    with devhost.client() as client:
        body = client.post(
            f"/threads/{thread_id}/runs/wait", json={"input": "x", "if_not_exists": "create"}
        ).json()
        thread = client.get(f"/threads/{thread_id}")
    assert body["run"]["thread_id"] == thread_id
    assert thread.status_code == 200


def test_cancel_wait_returns_final_run(devhost: DevHost) -> None:
    """POST .../cancel?wait=true answers with the run in its final state."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        run_id = hold_thread(client, thread_id)
        run = client.post(f"/runs/{run_id}/cancel", params={"wait": "true"}).json()
    assert run["status"] == "interrupted"


@pytest.mark.parametrize(
    "agent,text",
    [
        ("triage", "my name is Ada"),
        ("billing", "Please issue a refund of 40"),
    ],
    # No "refused" case: the tenant data policy refuses a card number before any run exists
    # (422), covered for every entry point in tests/integration/test_run_matrix.py.
    ids=["answer", "paused"],
)
def test_wait_answer_is_the_stored_run(devhost: DevHost, agent: str, text: str) -> None:
    """The run a `/runs/wait` answer shows (built in memory on the executing instance) is the
    run as stored: GET /runs/{id} afterwards shows the same fields."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        waited = client.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": agent, "input": text}
        ).json()
        stored = client.get(f"/runs/{waited['run']['run_id']}").json()
    assert waited["run"] == stored
