"""Per-run additions to a catalog agent: extra `instructions` and client-supplied function tools.

The OpenAI adapters (chat completions `tools`, Responses `tools` and `instructions`) record
them in the run's `config` (keys `instructions` and `client_tools`), so any executor, including
a queue consumer after a restart, rebuilds the same agent. `customize` applies them to the run's
clone of the agent:

- `instructions` are appended to the agent's own (the agent keeps its persona and guardrails);
- each client tool becomes a `FunctionTool` with `needs_approval=True`. The SDK stops the run
  *before* executing a tool that needs approval (an interruption) and keeps the model's
  `function_call` in the thread's history, which is exactly "hand the call to the client": the
  engine ends such a run `success` with the calls (`client_calls`) instead of opening reviews,
  and the client's next request continues the thread with `function_call_output` items. Its
  invoke function is never called. This reuses the SDK's own stop-before-executing seam; the
  alternative, `StopAtTools`, executes the tool first and stores its (placeholder) output in the
  history, where the client's real output would later duplicate it.

Client tools are given to the agent the request names (a handoff's target does not get them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from agents import Agent, FunctionTool, RunContextWrapper, ToolApprovalItem

Json = dict[str, Any]
INSTRUCTIONS: Final = "instructions"
CLIENT_TOOLS: Final = "client_tools"


async def _never_invoked(context: Any, arguments: str) -> str:
    """A client tool's body: the run always stops before it (needs_approval), so unreachable."""
    raise RuntimeError("client tools are executed by the client, not the server")


def client_tool(spec: Json) -> FunctionTool:
    """A FunctionTool the run stops at, from `{"name", "description", "parameters"}`."""
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    return FunctionTool(
        name=str(spec["name"]),
        description=str(spec.get("description") or ""),
        params_json_schema=dict(parameters),
        on_invoke_tool=_never_invoked,
        strict_json_schema=False,
        needs_approval=True,
    )


def customize(agent: Agent[Any], config: Json | None) -> Agent[Any]:
    """The run's agent with the run's extra instructions and client tools (unchanged if none)."""
    config = config or {}
    extra = config.get(INSTRUCTIONS)
    specs = config.get(CLIENT_TOOLS) or []
    if not extra and not specs:
        return agent
    changes: dict[str, Any] = {}
    if isinstance(extra, str) and extra:
        changes["instructions"] = _joined(agent.instructions, extra)
    if specs:
        taken = {getattr(t, "name", None) for t in agent.tools}
        # A client tool never shadows one of the agent's own (the agent's tool wins).
        added = [client_tool(s) for s in specs if s.get("name") not in taken]
        changes["tools"] = [*agent.tools, *added]
    return agent.clone(**changes)


def _joined(base: Any, extra: str) -> Any:
    """The agent's instructions followed by the request's (static or dynamic instructions)."""
    if base is None:
        return extra
    if isinstance(base, str):
        return f"{base}\n\n{extra}"

    async def dynamic(context: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        found = base(context, agent)
        if hasattr(found, "__await__"):
            found = await found
        return f"{found}\n\n{extra}"

    return dynamic


def client_tool_names(config: Json | None) -> set[str]:
    """Names of the client tools a run was given."""
    return {str(s.get("name")) for s in (config or {}).get(CLIENT_TOOLS) or []}


def client_calls(interruptions: Iterable[ToolApprovalItem], config: Json | None) -> list[Json]:
    """The interruptions as client tool calls (`{"call_id", "name", "arguments"}`), or [] when
    any of them is a server tool waiting for a human (then the run pauses for review)."""
    names = client_tool_names(config)
    calls: list[Json] = []
    for item in interruptions:
        if item.tool_name not in names:
            return []
        raw: Any = item.raw_item
        get = raw.get if isinstance(raw, dict) else lambda key, raw=raw: getattr(raw, key, None)
        arguments = get("arguments")
        calls.append(
            {
                "call_id": str(get("call_id") or get("id") or ""),
                "name": item.tool_name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            }
        )
    return calls
