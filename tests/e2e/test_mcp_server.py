"""Ascent as an MCP server: the official `mcp` client against `/api/mcp` on a running dev host."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import REFUND_REQUEST
from tests.security_support import ADMIN_KEY, new_tenant_with_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host that can make tenants (admin key), once on SQLite and once on Postgres."""
    url = POSTGRES_URL if request.param == "postgres" else None
    started = start_devhost(
        tmp_path_factory.mktemp("mcp"), database_url=url, extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY}
    )
    yield started
    started.stop()


@asynccontextmanager
async def mcp_session(host: DevHost, key: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session on the host's `/api/mcp`, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key or host.api_key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{host.base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def structured(result: CallToolResult) -> dict[str, Any]:
    """A successful tool result's structured content."""
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def text_of(result: CallToolResult) -> str:
    """A tool result's text, joined."""
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_lists_agent_memory_and_review_tools(host: DevHost) -> None:
    """`tools/list` offers each catalog agent, assistants, memory and reviews as tools."""
    async with mcp_session(host) as session:
        listed = await session.list_tools()
    names = {tool.name for tool in listed.tools}
    assert {
        "run_triage",
        "run_assistant",
        "run_billing",
        "run_tech_support",
        "run_tenant_assistant",
    } <= names
    assert {"remember", "recall", "search_memories"} <= names
    assert {"list_pending_reviews", "decide_review"} <= names
    run_tool = next(t for t in listed.tools if t.name == "run_tenant_assistant")
    assert set(run_tool.input_schema["required"]) == {"assistant_id", "input"}


async def test_agent_tool_continues_a_thread(host: DevHost) -> None:
    """An agent tool answers, and given its thread id back it continues that conversation."""
    async with mcp_session(host) as session:
        first = structured(
            await session.call_tool(
                "run_tenant_assistant", {"assistant_id": "assistant", "input": "my name is Ada"}
            )
        )
        assert first["status"] == "success"
        second = structured(
            await session.call_tool(
                "run_tenant_assistant",
                {
                    "assistant_id": "assistant",
                    "input": "what is my name?",
                    "thread_id": first["thread_id"],
                },
            )
        )
    assert second["thread_id"] == first["thread_id"]
    assert second["output"] == "Your name is Ada."


async def test_assistant_made_by_the_tenant_is_listed_and_runs(host: DevHost) -> None:
    """An assistant the tenant creates is listed by `list_assistants` and runs by its id."""
    with host.client() as client:
        created = client.post("/assistants", json={"graph_id": "triage", "name": "mcp-helper"})
        assert created.status_code == 200, created.text
    assistant_id = created.json()["assistant_id"]
    async with mcp_session(host) as session:
        listed = structured(await session.call_tool("list_assistants", {"graph_id": "triage"}))
        ran = structured(
            await session.call_tool(
                "run_tenant_assistant", {"assistant_id": assistant_id, "input": "hello"}
            )
        )
    assert assistant_id in {a["assistant_id"] for a in listed["assistants"]}
    assert ran["status"] == "success" and ran["agent"] == assistant_id


async def test_memory_tools_remember_recall_and_search(host: DevHost) -> None:
    """A fact remembered through MCP is recalled and found by search for the same caller."""
    fact = f"The user's favorite color is teal {uuid.uuid4().hex[:6]}."
    async with mcp_session(host) as session:
        saved = structured(await session.call_tool("remember", {"fact": fact}))
        recalled = structured(await session.call_tool("recall", {"query": "favorite color"}))
        found = structured(await session.call_tool("search_memories", {"query": "favorite color"}))
    assert saved["text"] == fact
    assert fact in recalled["facts"]
    assert any(
        item["key"] == saved["key"] and item["value"]["text"] == fact for item in found["items"]
    )


async def test_bad_arguments_are_a_tool_error(host: DevHost) -> None:
    """Missing, mistyped or malformed arguments answer an MCP error and the server keeps serving."""
    async with mcp_session(host) as session:
        missing = await session.call_tool("run_tenant_assistant", {"assistant_id": "assistant"})
        bad_thread = await session.call_tool(
            "run_triage", {"input": "hello", "thread_id": "not-a-uuid"}
        )
        unknown = await session.call_tool("no_such_tool", {})
        blank = await session.call_tool("remember", {"fact": "   "})
        still = await session.list_tools()
    for result in (missing, bad_thread, unknown, blank):
        assert result.is_error, text_of(result)
    assert "input" in text_of(missing)
    assert still.tools


async def test_unknown_agent_is_a_tool_error(host: DevHost) -> None:
    """Running an assistant that does not exist answers a tool error saying so."""
    async with mcp_session(host) as session:
        result = await session.call_tool(
            "run_tenant_assistant", {"assistant_id": "nobody", "input": "hi"}
        )
    assert result.is_error
    assert "nobody" in text_of(result)


async def test_another_tenants_thread_is_invisible(host: DevHost) -> None:
    """Continuing another tenant's thread answers exactly as a thread that does not exist."""
    _, issued = new_tenant_with_key(host.base_url)
    async with mcp_session(host) as session:
        mine = structured(await session.call_tool("run_triage", {"input": "hello there"}))
    async with mcp_session(host, key=issued["key"]) as other:
        foreign = await other.call_tool(
            "run_triage", {"input": "hi", "thread_id": mine["thread_id"]}
        )
        missing_id = str(uuid.uuid4())
        missing = await other.call_tool("run_triage", {"input": "hi", "thread_id": missing_id})
    assert foreign.is_error and missing.is_error
    assert text_of(foreign).replace(mine["thread_id"], "<id>") == text_of(missing).replace(
        missing_id, "<id>"
    )


@pytest.mark.parametrize("key", [None, "asc_nope_" + "0" * 32], ids=["no-key", "bad-key"])
def test_missing_or_bad_key_is_401(host: DevHost, key: str | None) -> None:
    """Without a valid API key `/api/mcp` answers 401 problem+json before any MCP is spoken."""
    headers = {"Accept": "application/json, text/event-stream"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(f"{host.base_url}/mcp", json=message, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_paused_run_is_reviewed_and_decided_through_mcp(host: DevHost) -> None:
    """A billing run that pauses names its review; the review is listed and decided once."""
    async with mcp_session(host) as session:
        paused = structured(await session.call_tool("run_billing", {"input": REFUND_REQUEST}))
        assert paused["status"] == "interrupted"
        review_id = paused["pending_reviews"][0]["review_id"]
        assert review_id in paused["message"] and "pending" in paused["message"].lower()
        listed = structured(
            await session.call_tool("list_pending_reviews", {"agent": "billing", "limit": 1000})
        )
        assert review_id in {r["review_id"] for r in listed["reviews"]}
        decided = structured(
            await session.call_tool(
                "decide_review", {"review_id": review_id, "decision": "approve"}
            )
        )
        again = await session.call_tool(
            "decide_review", {"review_id": review_id, "decision": "reject"}
        )
    assert decided["status"] == "approved"
    assert again.is_error and "already decided" in text_of(again)
    with host.client(timeout=60) as client:
        # The wait blocks until the resumed run ends; then its record holds the outcome.
        finished = client.get(f"/runs/{paused['run_id']}/wait")
        assert finished.status_code == 200, finished.text
        run = client.get(f"/runs/{paused['run_id']}")
    assert run.json()["status"] == "success"


async def test_another_tenant_sees_no_memories_or_reviews(host: DevHost) -> None:
    """Another tenant recalls none of the caller's facts and cannot list or decide its review."""
    fact = f"The user's secret word is {uuid.uuid4().hex[:8]}."
    _, issued = new_tenant_with_key(host.base_url)
    async with mcp_session(host) as session:
        structured(await session.call_tool("remember", {"fact": fact}))
        paused = structured(await session.call_tool("run_billing", {"input": REFUND_REQUEST}))
    review_id = paused["pending_reviews"][0]["review_id"]
    async with mcp_session(host, key=issued["key"]) as other:
        recalled = structured(await other.call_tool("recall", {"query": "secret word"}))
        found = structured(await other.call_tool("search_memories", {}))
        listed = structured(await other.call_tool("list_pending_reviews", {"limit": 1000}))
        decided = await other.call_tool(
            "decide_review", {"review_id": review_id, "decision": "approve"}
        )
    assert fact not in recalled["facts"] and found["items"] == []
    assert review_id not in {r["review_id"] for r in listed["reviews"]}
    assert decided.is_error and "Not found" in text_of(decided)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_session_stream_or_termination(host: DevHost, method: str) -> None:
    """Stateless: GET (a server stream) and DELETE (end a session) answer 405, Allow POST."""
    with host.client() as client:
        response = client.request(method, "/mcp", headers={"Accept": "text/event-stream"})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
