"""The agent catalog: the agents the API serves, loaded from the agent developer's own code.

Where the agents come from is resolved once per process, at first use (never when
function_app.py is imported):

1. ASCENT_AGENTS: module paths, comma-separated (`my_package.agents,other.agents`);
2. else the modules the installed distributions name in the entry-point group `ascent.agents`
   (`[project.entry-points."ascent.agents"] mine = "my_package.agents"`);
3. else `examples`, the demo agents (triage, assistant, billing, tech_support, and the SDK
   feature examples).

A module declares agents with `ascent.serve_agent(...)` (ascent/__init__.py, the public API):
each `AgentSpec` among its module-level names, or in a list named `AGENTS`, is served.

Loading checks the catalog and raises `CatalogError`, one line naming the file and the agent,
when a module cannot be imported, declares no agent, declares an agent name twice, or when a
function tool reachable from an agent (its tools, and those of the agents it hands off to) has
no risk class (`ascent.tool(..., risk=...)`; shared/security/tool_policy.py). An agent used as
a tool (`Agent.as_tool`) is one tool with the class its declaration gives; the tools inside it
run in its own nested run, unseen by the catalog, so declare it with the most restricted class
of what it may do.

The catalog is code, so it needs no Redis cache (shared/platform/cache.py): nothing in it
changes at run time, and each process's memo can never go stale.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from agents import Agent, FunctionTool, RunHooks

from shared.agents.mcp_servers import McpServerDecl
from shared.core.settings import get_settings
from shared.security.tool_approval import reachable_agents
from shared.security.tool_policy import declare_tool_class, declared_class

DEFAULT_MODULE: Final = "examples"
ENTRY_POINT_GROUP: Final = "ascent.agents"


class CatalogError(Exception):
    """The agent catalog cannot be served: the message names the file and the agent."""


@dataclass(frozen=True)
class AgentSpec:
    """A catalog entry: how to build an agent, and how the API serves it.

    `max_turns` replaces ASCENT_MAX_TURNS for runs of this agent (a run's
    `config.recursion_limit` can still lower it); `model` is the model name its runs use unless
    an assistant chooses another; `hooks` are the SDK run hooks its runs get.
    """

    name: str
    description: str
    build: Callable[[], Agent[Any]]
    max_turns: int | None = None
    model: str | None = None
    hooks: RunHooks[Any] | None = None
    mcp_servers: tuple[McpServerDecl, ...] = ()
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class Catalog:
    """The loaded catalog: each spec by name, and the built agent (not yet gated) by name."""

    specs: dict[str, AgentSpec]
    agents: dict[str, Agent[Any]]


def catalog_modules() -> list[str]:
    """The module paths the catalog loads, by ASCENT_AGENTS, the entry points, or the default."""
    configured = [m.strip() for m in get_settings().agents.split(",") if m.strip()]
    if configured:
        return list(dict.fromkeys(configured))  # a module named twice is loaded once
    found = [ep.value.split(":")[0] for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(set(found)) or [DEFAULT_MODULE]


def _module_file(name: str) -> str:
    """Where a module's source is, for messages (its name when it cannot be found)."""
    loaded = sys.modules.get(name)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    return str(origin) if origin else name


def _import(name: str) -> ModuleType:
    """Import an agent module; CatalogError with the file and line of the failure."""
    try:
        return importlib.import_module(name)
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        # The innermost frame outside the import machinery: the user's line that failed.
        user = [f for f in frames if "importlib" not in f.filename]
        where = f"{user[-1].filename}, line {user[-1].lineno}" if user else _module_file(name)
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            where = "not found on sys.path"
        raise CatalogError(
            f"agent module {name!r} ({where}) cannot be imported: {type(exc).__name__}: {exc}"
        ) from None


def declared_specs(module: ModuleType) -> list[AgentSpec]:
    """The specs a module declares: its module-level AgentSpecs, or its `AGENTS` list."""
    listed = getattr(module, "AGENTS", None)
    values = list(listed) if isinstance(listed, list | tuple) else list(vars(module).values())
    found: list[AgentSpec] = []
    for value in values:
        if isinstance(value, AgentSpec) and all(value is not f for f in found):
            found.append(value)
    return found


def _check_tools(spec: AgentSpec, agent: Agent[Any]) -> None:
    """CatalogError when a function tool the agent can reach has no risk class."""
    for current in reachable_agents(agent):
        for tool in current.tools:
            if isinstance(tool, FunctionTool) and declared_class(tool.name) is None:
                owner = "" if current is agent else f" (through agent {current.name!r})"
                raise CatalogError(
                    f"{spec.source}: agent {spec.name!r}: tool {tool.name!r}{owner} has no risk "
                    "class; declare it with ascent.tool(..., risk='read' | 'write' | 'spend')"
                )


def load_catalog(modules: list[str]) -> Catalog:
    """Import the modules, build and check every agent they declare (CatalogError if not)."""
    specs: dict[str, AgentSpec] = {}
    built: dict[str, Agent[Any]] = {}
    for name in modules:
        module = _import(name)
        source = _module_file(name)
        declared = declared_specs(module)
        if not declared:
            raise CatalogError(
                f"{source}: agent module {name!r} declares no agent; call ascent.serve_agent(...)"
            )
        for spec in declared:
            located = spec if spec.source else _with_source(spec, source)
            if spec.name in specs:
                raise CatalogError(
                    f"{located.source}: agent {spec.name!r} is declared twice (also in "
                    f"{specs[spec.name].source}); agent names must be unique"
                )
            try:
                agent = spec.build()
            except Exception as exc:
                raise CatalogError(
                    f"{located.source}: agent {spec.name!r} cannot be built: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            _check_tools(located, agent)
            for server in spec.mcp_servers:
                for tool_name, tool_class in server.tools.items():
                    declare_tool_class(tool_name, tool_class)
            specs[spec.name] = located
            built[spec.name] = agent
    return Catalog(specs, built)


def _with_source(spec: AgentSpec, source: str) -> AgentSpec:
    return replace(spec, source=str(Path(source)))


@cache
def loaded() -> Catalog:
    """The process's catalog, loaded at first use (CatalogError when it cannot be served)."""
    return load_catalog(catalog_modules())


def catalog() -> dict[str, AgentSpec]:
    """The catalog's specs by agent name, in declaration order."""
    return loaded().specs
