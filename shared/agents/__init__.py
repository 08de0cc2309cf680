"""The agent catalog: every agent the API serves, by name, built once per process.

It is static code, so it needs no Redis cache (shared/platform/cache.py): nothing in it changes at
run time, and each process's `get_agent` memo can never go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from agents import Agent, FunctionTool

from shared.agents import assistant, billing, tech_support, triage
from shared.agents.mcp_servers import with_mcp_servers
from shared.core.errors import NotFound
from shared.security.tool_approval import gate_tools


@dataclass(frozen=True)
class AgentSpec:
    """A catalog entry: the public name and description, and how to build the agent."""

    name: str
    description: str
    build: Callable[[], Agent[Any]]


CATALOG: dict[str, AgentSpec] = {
    m.NAME: AgentSpec(m.NAME, m.DESCRIPTION, m.build)
    for m in (triage, assistant, billing, tech_support)
}


@cache
def get_agent(name: str) -> Agent[Any]:
    """Return the built agent with this catalog name, or raise NotFound.

    Its write and spend tools pause for human approval (shared/security/tool_approval.py);
    the MCP servers it declares are attached (shared/agents/mcp_servers.py).
    """
    spec = CATALOG.get(name)
    if spec is None:
        raise NotFound(f"No agent named {name!r}.")
    return gate_tools(with_mcp_servers(spec.build(), name))


def catalog_tools() -> Iterator[tuple[str, str]]:
    """Yield (agent name, tool name) for every tool reachable in the catalog, via handoffs."""
    seen: set[int] = set()
    stack: list[Agent[Any]] = [get_agent(name) for name in CATALOG]
    while stack:
        agent = stack.pop()
        if id(agent) in seen:
            continue
        seen.add(id(agent))
        for tool in agent.tools:
            yield agent.name, tool.name if isinstance(tool, FunctionTool) else type(tool).__name__
        stack.extend(h for h in agent.handoffs if isinstance(h, Agent))
