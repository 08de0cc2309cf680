"""Ascent's public API for agent developers: the only supported surface of the framework.

An agent module imports from here, and nothing from `shared/` (internal, and changed freely):

    from agents import Agent
    from ascent import RunContext, serve_agent, tool

    @tool(risk="read")
    def greet(ctx: RunContextWrapper[RunContext], name: str) -> str:
        '''Greet someone by name.'''
        return f"Hello {name}, from tenant {ctx.context.tenant_id}."

    hello = serve_agent(Agent(name="hello", instructions="Greet people.", tools=[greet]))

Serve it by setting ASCENT_AGENTS to the module's path (docs/agents.md). The names this module
exports are pinned by tests/unit/test_public_api.py: changing them is a deliberate act.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

from agents import Agent, FunctionTool, RunConfig, RunHooks, Runner, function_tool
from agents.result import RunResult

from shared.agents.guardrails import no_card_numbers
from shared.agents.loading import AgentSpec, CatalogError
from shared.agents.mcp_servers import McpServerDecl as McpServer
from shared.agents.memory_tools import MEMORY_TOOLS
from shared.core.context import RunContext, emit_progress
from shared.platform.offline_model import OfflineModelProvider
from shared.security.tool_policy import declare_tool_class

__all__ = [
    "AgentSpec",
    "MEMORY_TOOLS",
    "CatalogError",
    "McpServer",
    "Risk",
    "RunContext",
    "emit_progress",
    "no_card_numbers",
    "run_offline",
    "serve_agent",
    "tool",
]

Risk = Literal["read", "write", "spend"]
"""A tool's risk class: `read` runs freely; `write` and `spend` pause for a reviewer's approval
unless the tenant's tool policy waives it."""

MAX_TURNS_LIMIT = 100


def serve_agent(
    agent: Agent[Any] | Callable[[], Agent[Any]],
    *,
    name: str | None = None,
    description: str | None = None,
    max_turns: int | None = None,
    model: str | None = None,
    hooks: RunHooks[Any] | None = None,
    mcp_servers: Sequence[McpServer] = (),
) -> AgentSpec:
    """Declare an agent for serving; assign the result to a module-level name.

    `agent` is an Agent or a function building one. `name` (default: the agent's) is its id in
    the API; `description` (default: its `handoff_description`) is listed with it. `max_turns`
    replaces ASCENT_MAX_TURNS for its runs; `model` is the model name its runs use (an
    assistant may still choose another); `hooks` are SDK run hooks for its runs; `mcp_servers`
    are the MCP servers it calls, each tool with its risk class.
    """
    if max_turns is not None and not 1 <= max_turns <= MAX_TURNS_LIMIT:
        raise ValueError(f"max_turns must be between 1 and {MAX_TURNS_LIMIT}")
    if isinstance(agent, Agent):
        given: Agent[Any] = agent

        def build() -> Agent[Any]:
            return given

    else:
        build = agent
    # A builder is called here only when the declaration leaves its name or description out.
    probe = build() if name is None or description is None else None
    return AgentSpec(
        name=name or (probe.name if probe is not None else ""),
        description=description
        if description is not None
        else (probe.handoff_description if probe is not None else None) or "",
        build=build,
        max_turns=max_turns,
        model=model,
        hooks=hooks,
        mcp_servers=tuple(mcp_servers),
    )


@overload
def tool(func: FunctionTool, /, *, risk: Risk) -> FunctionTool: ...


@overload
def tool(
    func: Callable[..., Any],
    /,
    *,
    risk: Risk,
    name: str | None = None,
    description: str | None = None,
) -> FunctionTool: ...


@overload
def tool(
    func: None = None, /, *, risk: Risk, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    func: FunctionTool | Callable[..., Any] | None = None,
    /,
    *,
    risk: Risk,
    name: str | None = None,
    description: str | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a function (or an existing FunctionTool, such as `agent.as_tool(...)`) a tool with a
    risk class: `@tool(risk="read")`, `tool(fn, risk="spend")`.

    A function's first parameter may be the SDK's `RunContextWrapper[RunContext]`; its
    docstring describes the tool and its arguments to the model, as with `function_tool`.
    """

    def make(target: FunctionTool | Callable[..., Any]) -> FunctionTool:
        made = (
            target
            if isinstance(target, FunctionTool)
            else function_tool(target, name_override=name, description_override=description)
        )
        declare_tool_class(made.name, risk)
        return made

    if func is None:
        return make
    return make(func)


def run_offline(
    agent: AgentSpec | Agent[Any], input: str, *, context: RunContext | None = None
) -> RunResult:
    """Run an agent once on the offline model (deterministic, no network, no database): for an
    agent module's own tests. Tools run directly: approvals and MCP servers apply only when the
    agent is served."""
    built = agent.build() if isinstance(agent, AgentSpec) else agent
    config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
    given = context or RunContext(tenant_id="test", user_id="tester")
    return Runner.run_sync(built, input, context=given, run_config=config)
