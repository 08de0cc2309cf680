"""MCP server declarations, approval classes, idempotency keys, the pool and failure mapping."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from agents import AgentsException, FunctionTool

from examples import assistant
from shared.agents import mcp_servers
from shared.agents.mcp_servers import (
    IDEMPOTENCY_KEY,
    Connections,
    DeclaredServer,
    McpServerDecl,
    McpServerFailed,
    declared_servers,
    with_mcp_servers,
)
from shared.core.context import RunContext
from shared.core.settings import get_settings
from shared.runs.engine import failure_of
from shared.security.tool_approval import requires_approval

SHOP = McpServerDecl(
    name="shop", url="http://shop.test/mcp", tools={"store_hours": "read", "refund": "write"}
)


def use_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set settings env vars and drop the cached settings."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_a_tool_the_declaration_does_not_classify_is_spend() -> None:
    """Declared classes are kept; any other tool of the server is `spend` (fail closed)."""
    assert [SHOP.class_of(t) for t in ("store_hours", "refund", "other")] == [
        "read",
        "write",
        "spend",
    ]


def test_header_values_are_read_from_the_secrets_setting_not_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header names a secret of ASCENT_MCP_SECRETS; its value is read when connecting and
    is not part of the declaration."""
    use_env(monkeypatch, ASCENT_MCP_SECRETS='{"shop": "s3cret-value"}')
    decl = SHOP.model_copy(update={"headers": {"X-Key": "shop"}})
    assert decl.header_values() == {"X-Key": "s3cret-value"}
    assert "s3cret-value" not in decl.model_dump_json()


def test_a_header_cannot_send_another_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Naming a setting that is not among the MCP secrets (the model key) fails clearly,
    naming the server and header, and sends nothing."""
    use_env(monkeypatch, OPENAI_API_KEY="sk-not-for-mcp-servers-0000")
    decl = SHOP.model_copy(update={"headers": {"X-Key": "openai_api_key"}})
    with pytest.raises(McpServerFailed, match="MCP server 'shop' has no secret for header 'X-Key'"):
        decl.header_values()


def test_a_malformed_secrets_setting_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ASCENT_MCP_SECRETS that is not a JSON object fails the server clearly, not echoing it."""
    use_env(monkeypatch, ASCENT_MCP_SECRETS="{not json s3cret")
    decl = SHOP.model_copy(update={"headers": {"X-Key": "shop"}})
    with pytest.raises(McpServerFailed, match="ASCENT_MCP_SECRETS is not a JSON object") as raised:
        decl.header_values()
    assert "s3cret" not in str(raised.value)


def test_servers_are_declared_per_agent_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCENT_MCP_SERVERS gives an agent its servers; other agents get none."""
    use_env(monkeypatch, ASCENT_MCP_SERVERS=json.dumps({"billing": [SHOP.model_dump()]}))
    assert declared_servers("billing") == [SHOP]
    assert declared_servers("triage") == []


def test_an_invalid_servers_setting_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A declaration with an unknown key (or bad JSON) is a ValueError naming the setting."""
    use_env(monkeypatch, ASCENT_MCP_SERVERS='{"billing": [{"name": "x", "urls": "y"}]}')
    with pytest.raises(ValueError, match="ASCENT_MCP_SERVERS is not valid"):
        declared_servers("billing")


def test_the_tool_server_replaces_the_in_process_shared_tools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ASCENT_MCP_TOOLS_URL set, the assistant's calculator and clock come from the tool
    server (read class, allow-listed) and its memory tools stay in-process."""
    use_env(monkeypatch, ASCENT_MCP_TOOLS_URL="http://tools.test/mcp")
    agent = with_mcp_servers(assistant.build(), "assistant")
    assert [t.name for t in agent.tools if isinstance(t, FunctionTool)] == ["remember", "recall"]
    (server,) = agent.mcp_servers
    assert isinstance(server, DeclaredServer)
    assert server.decl.allow == ("calculate", "current_time")
    assert {server.decl.class_of(t) for t in ("calculate", "current_time")} == {"read"}


def test_without_a_tool_server_the_agent_keeps_its_own_tools() -> None:
    """Unset, the demo agents run their tools in-process and declare no MCP server."""
    agent = with_mcp_servers(assistant.build(), "assistant")
    assert "calculate" in [t.name for t in agent.tools if isinstance(t, FunctionTool)]
    assert agent.mcp_servers == []


def test_each_call_carries_an_idempotency_key_stable_across_retries() -> None:
    """The `_meta` key names the run, the tool and its arguments, not the model's call id: a
    retried run asking for the same write sends the same key; other arguments another one."""

    def key(call_id: str, arguments: dict[str, Any]) -> Any:
        wrapper = SimpleNamespace(context=RunContext("t", "u", "th", "run-1"), tool_call_id=call_id)
        found = SimpleNamespace(run_context=wrapper, tool_name="charge_card", arguments=arguments)
        return mcp_servers._call_meta(found)[IDEMPOTENCY_KEY]  # type: ignore[arg-type,index]

    assert key("call-1", {"amount": 25}) == key("call-9", {"amount": 25})
    assert key("call-1", {"amount": 25}) != key("call-1", {"amount": 26})
    assert key("call-1", {"amount": 25}).startswith("run-1/charge_card/")


async def test_write_and_spend_mcp_tools_need_approval_and_read_ones_do_not() -> None:
    """The declared class decides, as for catalog tools: read never pauses, write/spend do."""
    assert await requires_approval(None, "store_hours", "read") is False
    assert await requires_approval(None, "refund", "write") is True
    assert await requires_approval(None, "charge_card", "spend") is True


async def test_the_deployment_default_can_waive_an_mcp_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write MCP tool listed in ASCENT_AUTO_APPROVE_TOOLS runs without approval."""
    use_env(monkeypatch, ASCENT_AUTO_APPROVE_TOOLS="remember,refund")
    assert await requires_approval(None, "refund", "write") is False


class FakeClient:
    """Stands in for a connected SDK client: counts tool-list invalidations and closes."""

    def __init__(self) -> None:
        self.invalidated = 0
        self.closed = False

    def invalidate_tools_cache(self) -> None:
        self.invalidated += 1

    async def cleanup(self) -> None:
        self.closed = True


@pytest.fixture
def fake_connect(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    """Replace connecting with FakeClients; the list holds each one made."""
    made: list[FakeClient] = []

    async def connect(decl: McpServerDecl) -> Any:
        made.append(FakeClient())
        return made[-1]

    monkeypatch.setattr(mcp_servers, "_connect", connect)
    return made


async def test_a_pooled_tool_list_is_listed_again_after_its_ttl(
    fake_connect: list[FakeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client is reused; its cached tool list is dropped once older than the TTL."""
    now = [100.0]
    monkeypatch.setattr(mcp_servers.time, "monotonic", lambda: now[0])
    pool = Connections(bound=4)
    first = await pool.client(SHOP, ttl=60)
    now[0] += 30
    assert await pool.client(SHOP, ttl=60) is first and fake_connect[0].invalidated == 0
    now[0] += 31
    await pool.client(SHOP, ttl=60)
    assert (len(fake_connect), fake_connect[0].invalidated) == (1, 1)


async def test_the_pool_is_bounded_closing_the_least_recently_used(
    fake_connect: list[FakeClient],
) -> None:
    """Past its bound, the pool closes the client used longest ago."""
    pool = Connections(bound=2)
    decls = [SHOP.model_copy(update={"name": n}) for n in ("a", "b", "c")]
    await pool.client(decls[0], ttl=None)
    await pool.client(decls[1], ttl=None)
    await pool.client(decls[0], ttl=None)
    await pool.client(decls[2], ttl=None)
    assert [c.closed for c in fake_connect] == [False, True, False]


async def test_a_failure_drops_the_client_so_the_next_use_reconnects(
    fake_connect: list[FakeClient],
) -> None:
    """After a failed call, the next use connects afresh (and lists the tools again)."""
    pool = Connections(bound=4)
    await pool.client(SHOP, ttl=None)
    await pool.drop(SHOP)
    await pool.client(SHOP, ttl=None)
    assert [c.closed for c in fake_connect] == [True, False]


def test_an_mcp_failure_wrapped_by_the_sdk_is_the_runs_clear_error() -> None:
    """The engine finds the MCP failure behind the SDK's wrapper: cause `mcp`, its message."""
    try:
        try:
            raise McpServerFailed("shop", "did not answer 'x' within 2s")
        except McpServerFailed as inner:
            raise AgentsException("Error running tool x") from inner
    except AgentsException as outer:
        failure = failure_of(outer)
    assert (failure.status, failure.cause) == ("error", "mcp")
    assert failure.error == "MCP server 'shop' did not answer 'x' within 2s"


def test_a_tenant_policy_may_waive_a_declared_mcp_write_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tool-policy body accepts an MCP write/spend tool ASCENT_MCP_SERVERS declares, and
    still refuses its read tools and undeclared names."""
    from pydantic import ValidationError

    from shared.agents import catalog
    from shared.security.tenant_settings import ToolPolicyUpdate

    catalog()  # classifies the catalog's tools (issue_refund is `spend`)
    use_env(monkeypatch, ASCENT_MCP_SERVERS=json.dumps({"billing": [SHOP.model_dump()]}))
    assert ToolPolicyUpdate(auto_approve=["refund", "issue_refund"]).auto_approve == [
        "refund",
        "issue_refund",
    ]
    for name in ("store_hours", "unknown"):
        with pytest.raises(ValidationError):
            ToolPolicyUpdate(auto_approve=[name])
