"""The Agents SDK's features, served: examples/features.py over HTTP on one dev host (SQLite).

The host serves ASCENT_AGENTS=examples.features only, so these tests also show a catalog of
agents chosen by setting, with nothing in the framework edited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DevHost, start_devhost
from tests.e2e.protocol_helpers import new_thread, sse_events


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """A dev host serving the feature examples."""
    started = start_devhost(
        Path(tmp_path_factory.mktemp("features")),
        extra_env={"ASCENT_AGENTS": "examples.features"},
    )
    yield started
    started.stop()


def run(client: httpx.Client, agent: str, text: str, **body: Any) -> dict[str, Any]:
    """Run an agent on the simple route; its response body."""
    response = client.post(f"/agents/{agent}/runs", json={"input": text, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_catalog_is_the_configured_module(host: DevHost) -> None:
    """GET /agents lists exactly the agents of the module ASCENT_AGENTS names."""
    with host.client() as client:
        names = [a["name"] for a in client.get("/agents").json()["agents"]]
    assert names == [
        "ticket_triage",
        "concierge",
        "word_counter",
        "front_desk",
        "terse",
        "stock",
        "audited",
    ]


def test_structured_output_is_json_and_in_the_schemas(host: DevHost) -> None:
    """An output_type agent answers with JSON (simple route and Agent Protocol state), and
    /agents/{id}/schemas describes it as the output's structured_response."""
    text = "urgent billing problem with order ORD-1234"
    with host.client() as client:
        simple = json.loads(run(client, "ticket_triage", text)["output"])
        waited = client.post("/runs/wait", json={"agent_id": "ticket_triage", "input": text})
        schemas = client.get("/agents/ticket_triage/schemas").json()
    assert {k: simple[k] for k in ("category", "urgent", "order")} == {
        "category": "billing",
        "urgent": True,
        "order": "ORD-1234",
    }
    assert waited.json()["values"]["structured_response"]["order"] == "ORD-1234"
    described = schemas["output_schema"]["properties"]["structured_response"]
    assert set(described["properties"]) == {"category", "urgent", "order", "summary"}


def test_dynamic_instructions_read_the_run_context(host: DevHost) -> None:
    """The concierge's instructions are written per run from its tenant, user and thread."""
    with host.client() as client:
        thread_id = new_thread(client)
        body = run(client, "concierge", "what are your instructions?", thread_id=thread_id)
    assert body["output"].startswith("My instructions: You are the concierge of tenant dev")
    assert f"in thread {thread_id}." in body["output"]


def test_an_agent_is_called_as_a_tool(host: DevHost) -> None:
    """word_counter asks its counting agent (Agent.as_tool), which calls its own tool."""
    with host.client() as client:
        body = run(client, "word_counter", "count the words in: the quick brown fox")
    assert body["output"] == "The text has 4 words."


def test_a_handoff_input_filter_hides_the_earlier_conversation(host: DevHost) -> None:
    """front_desk hands a warranty claim over with only the latest request: the specialist
    answers without the thread's earlier message."""
    with host.client() as client:
        first = run(client, "front_desk", "hello there")
        body = run(client, "front_desk", "I have a warranty claim", thread_id=first["thread_id"])
    assert body["last_agent"] == "warranty"
    assert body["output"].startswith("You said: “I have a warranty claim”.")
    assert "Earlier" not in body["output"]


def test_per_agent_model_settings_apply(host: DevHost) -> None:
    """terse's ModelSettings(max_tokens=4) cuts its answer to four words."""
    with host.client() as client:
        body = run(client, "terse", "tell me everything about the weather today")
    assert len(body["output"].split()) == 4


def test_tool_use_behavior_makes_the_tool_result_the_answer(host: DevHost) -> None:
    """stock's tool_use_behavior returns the tool's record as the answer, without a second
    model turn: the thread's last message is the tool's output, not an assistant message."""
    with host.client() as client:
        body = run(client, "stock", "stock of SKU-1234")
        items = client.get(f"/threads/{body['thread_id']}/messages").json()["items"]
    assert json.loads(body["output"]) == {"sku": "SKU-1234", "in_stock": 34, "warehouse": "north"}
    assert [i.get("type", "message") for i in items] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_run_hooks_report_progress(host: DevHost) -> None:
    """audited's RunHooks emit a progress event at its agent's and its tool's start."""
    with (
        host.client() as client,
        client.stream(
            "POST",
            "/runs/stream",
            json={
                "agent_id": "audited",
                "input": "what time is it in UTC",
                "stream_mode": "custom",
            },
        ) as response,
    ):
        custom = [e.data for e in sse_events(response) if e.event == "custom"]
    assert custom[:2] == [
        {"hook": "agent_start", "agent": "audited"},
        {"hook": "tool_start", "agent": "audited", "tool": "utc_clock"},
    ]
