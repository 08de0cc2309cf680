"""The agents wing: the catalog the API serves (loaded from the agent developer's code, see
shared/agents/loading.py), each agent built and gated once per process.

Nothing here loads the catalog at import: the first `get_agent` or `catalog()` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from agents import Agent, FunctionTool

from shared.agents.loading import AgentSpec, CatalogError, catalog, loaded
from shared.agents.mcp_servers import with_mcp_servers
from shared.core.errors import NotFound
from shared.security.tool_approval import gate_tools, reachable_agents

__all__ = ["AgentSpec", "CatalogError", "agent_spec", "catalog", "catalog_tools", "get_agent"]


def agent_spec(name: str) -> AgentSpec:
    """The catalog entry with this name, or NotFound."""
    spec = catalog().get(name)
    if spec is None:
        raise NotFound(f"No agent named {name!r}.")
    return spec


@cache
def get_agent(name: str) -> Agent[Any]:
    """Return the built agent with this catalog name, or raise NotFound.

    Its write and spend tools pause for human approval (shared/security/tool_approval.py);
    the MCP servers it declares are attached (shared/agents/mcp_servers.py).
    """
    spec = agent_spec(name)
    return gate_tools(with_mcp_servers(loaded().agents[name], name, spec.mcp_servers))


def catalog_tools() -> Iterator[tuple[str, str]]:
    """Yield (agent name, tool name) for every tool reachable in the catalog, via handoffs."""
    seen: set[int] = set()
    for name in catalog():
        for agent in reachable_agents(get_agent(name)):
            if id(agent) in seen:
                continue
            seen.add(id(agent))
            for tool in agent.tools:
                kind = tool.name if isinstance(tool, FunctionTool) else type(tool).__name__
                yield agent.name, kind
