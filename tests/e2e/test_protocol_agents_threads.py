"""Agent Protocol agents and threads endpoints over real HTTP on the dev host."""

from __future__ import annotations

import uuid

from tests.conftest import DevHost
from tests.e2e.protocol_helpers import new_thread

PROBLEM = "application/problem+json"


def test_agents_search_lists_the_catalog(devhost: DevHost) -> None:
    """POST /agents/search returns every catalog agent with the standard capabilities."""
    with devhost.client() as client:
        agents = client.post("/agents/search", json={}).json()
    names = {a["agent_id"] for a in agents}
    assert {"triage", "billing"} <= names
    assert all(a["capabilities"]["ap.io.streaming"] for a in agents)


def test_agent_get_and_schemas(devhost: DevHost) -> None:
    """GET /agents/{id} and /schemas describe an agent; an unknown one is a 404 problem."""
    with devhost.client() as client:
        agent = client.get("/agents/billing").json()
        schemas = client.get("/agents/billing/schemas").json()
        missing = client.get("/agents/nope")
    assert agent["name"] == "billing"
    assert {"input_schema", "output_schema", "state_schema"} <= set(schemas)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


def test_thread_create_get_patch(devhost: DevHost) -> None:
    """A created thread is idle, and PATCH merges metadata and appends messages."""
    with devhost.client() as client:
        thread_id = new_thread(client, metadata={"team": "a"})
        patched = client.patch(
            f"/threads/{thread_id}",
            json={"metadata": {"x": 1}, "messages": [{"role": "user", "content": "hello"}]},
        ).json()
        fetched = client.get(f"/threads/{thread_id}").json()
    assert patched["metadata"] == {"team": "a", "x": 1}
    assert fetched["status"] == "idle"
    assert [m["content"] for m in fetched["messages"]] == ["hello"]


def test_thread_create_with_id_conflicts_unless_do_nothing(devhost: DevHost) -> None:
    """Creating a thread id twice is 409, or returns the existing one with if_exists=do_nothing."""
    thread_id = str(uuid.uuid4())
    with devhost.client() as client:
        first = client.post("/threads", json={"thread_id": thread_id})
        again = client.post("/threads", json={"thread_id": thread_id})
        same = client.post("/threads", json={"thread_id": thread_id, "if_exists": "do_nothing"})
    assert first.status_code == 200
    assert again.status_code == 409
    assert same.json()["thread_id"] == thread_id


def test_thread_search_filters_on_metadata(devhost: DevHost) -> None:
    """POST /threads/search returns only threads whose metadata contains the filter."""
    tag = uuid.uuid4().hex
    with devhost.client() as client:
        wanted = new_thread(client, metadata={"tag": tag})
        new_thread(client, metadata={"tag": "other"})
        found = client.post("/threads/search", json={"metadata": {"tag": tag}}).json()
    assert [t["thread_id"] for t in found] == [wanted]


def test_thread_delete_then_404(devhost: DevHost) -> None:
    """A deleted thread answers 404 afterwards."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        deleted = client.delete(f"/threads/{thread_id}")
        after = client.get(f"/threads/{thread_id}")
    assert deleted.status_code == 204
    assert after.status_code == 404


def test_thread_history_has_one_state_per_run(devhost: DevHost) -> None:
    """GET /threads/{id}/history lists a state per finished run, newest first."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        for text in ("my name is Ada", "what is my name?"):
            reply = client.post(
                f"/threads/{thread_id}/runs/wait", json={"assistant_id": "assistant", "input": text}
            )
            assert reply.status_code == 200, reply.text
        history = client.get(f"/threads/{thread_id}/history").json()
    assert len(history) == 2
    assert len(history[0]["values"]["messages"]) > len(history[1]["values"]["messages"])


def test_thread_copy_keeps_conversation(devhost: DevHost) -> None:
    """POST /threads/{id}/copy makes a new thread with the same messages."""
    with devhost.client() as client:
        thread_id = new_thread(client)
        client.post(f"/threads/{thread_id}/runs/wait", json={"input": "my name is Ada"})
        copy = client.post(f"/threads/{thread_id}/copy").json()
        original = client.get(f"/threads/{thread_id}").json()
    assert copy["thread_id"] != thread_id
    assert copy["messages"] == original["messages"]


def test_thread_bad_input_is_a_4xx_problem(devhost: DevHost) -> None:
    """Malformed bodies and ids answer 4xx problem+json, never 5xx."""
    with devhost.client() as client:
        answers = [
            client.post("/threads", content=b"{not json"),
            client.post("/threads", json={"thread_id": "not-a-uuid"}),
            client.post("/threads/search", json={"limit": 0}),
            client.get("/threads/not-a-uuid"),
            client.patch(f"/threads/{uuid.uuid4()}", json={}),
        ]
    assert [a.status_code for a in answers] == [400, 422, 422, 404, 404]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)
