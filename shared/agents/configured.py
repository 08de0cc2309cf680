"""Assistants as the run engine sees them: a catalog agent configured by a tenant's assistant.

An assistant (LangGraph's name; stored in shared/db/assistant_models.py, managed through
shared/api/assistants.py) names a catalog agent (`graph_id`) and configures it through
`config.configurable` and/or `context` (context wins on a key both give):

- `model`: the model name the agent uses instead of the deployment's;
- `instructions`: an addendum appended to the agent's own instructions;
- `tools`: the subset of the agent's own tools it may call (unknown names are refused);
- `model_settings`: temperature, top_p, max_tokens, ... mapped onto the SDK's ModelSettings.

Other configurable keys are kept and ignored, as LangGraph does. The configuration applies to
the agent the run starts on; agents it hands off to keep their own.

Every catalog agent is also a read-only default assistant whose id is LangGraph's
`uuid5(NAMESPACE_GRAPH, graph_id)`; the graph name itself is accepted as its id too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Final, Literal

from agents import Agent, FunctionTool, ModelSettings, RunContextWrapper, RunHooks
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, and_, select

from shared.agents import agent_spec, catalog, get_agent
from shared.core.errors import NotFound, ValidationFailed
from shared.db import direct
from shared.db.assistant_models import Assistant, AssistantVersion

Json = dict[str, Any]

# LangGraph's namespace for the default assistants' ids (langgraph_api.graph.NAMESPACE_GRAPH).
NAMESPACE_GRAPH: Final = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
# Where a run records the assistant and version it runs (LangGraph puts assistant_id there).
ASSISTANT_KEY: Final = "assistant_id"
VERSION_KEY: Final = "assistant_version"

ASSISTANTS: Final[Table] = Assistant.__table__  # type: ignore[attr-defined]
VERSIONS: Final[Table] = AssistantVersion.__table__  # type: ignore[attr-defined]


def catalog_assistant_id(graph_id: str) -> str:
    """The stable id of a catalog agent's default assistant (LangGraph's convention)."""
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


def catalog_ids() -> dict[str, str]:
    """The catalog agents by their default assistant's id (loads the catalog at first use)."""
    return _catalog_ids(tuple(catalog()))


@cache
def _catalog_ids(names: tuple[str, ...]) -> dict[str, str]:
    return {catalog_assistant_id(name): name for name in names}


def catalog_name(ref: str) -> str | None:
    """The catalog agent a reference names (its name or its default assistant's id), or None."""
    if ref in catalog():
        return ref
    return catalog_ids().get(ref.lower())


def as_uuid(ref: str) -> str | None:
    """A reference as a normalized UUID, or None when it is not one."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return None


def may_name_agent(ref: str) -> bool:
    """Whether a reference could name an agent (catalog, or an assistant id): no I/O."""
    return catalog_name(ref) is not None or as_uuid(ref) is not None


def tool_names(graph_id: str) -> list[str]:
    """The names of a catalog agent's own tools, in its order."""
    return [tool.name for tool in get_agent(graph_id).tools if isinstance(tool, FunctionTool)]


# --- configuration ---------------------------------------------------------------------------


class ModelSettingsIn(BaseModel):
    """The model settings an assistant may set (each maps onto the SDK's ModelSettings)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    parallel_tool_calls: bool | None = None
    tool_choice: Literal["auto", "required", "none"] | None = None
    truncation: Literal["auto", "disabled"] | None = None


class AssistantSettings(BaseModel):
    """What an assistant changes about its agent (None: the agent's own)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, min_length=1, max_length=100)
    instructions: str | None = Field(None, max_length=20_000)
    tools: list[str] | None = Field(None, max_length=100)
    model_settings: ModelSettingsIn | None = None


def settings_of(graph_id: str, config: Json | None, context: Json | None) -> AssistantSettings:
    """Validate an assistant's configuration for its agent (422 naming each bad field)."""
    configurable = (config or {}).get("configurable")
    if configurable is not None and not isinstance(configurable, dict):
        raise ValidationFailed(
            "config.configurable must be an object.",
            errors=[{"loc": ["config", "configurable"], "msg": "not an object"}],
        )
    merged = {**(configurable or {}), **(context or {})}
    try:
        settings = AssistantSettings.model_validate(merged)
    except ValidationError as exc:
        errors = [
            {"loc": ["configurable", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ValidationFailed("The assistant's configuration is invalid.", errors=errors) from None
    if settings.tools is not None:
        known = set(tool_names(graph_id))
        unknown = sorted(set(settings.tools) - known)
        if unknown:
            raise ValidationFailed(
                f"Agent {graph_id!r} has no tool(s) {unknown}; it has {sorted(known)}.",
                errors=[{"loc": ["configurable", "tools"], "msg": "unknown tool names"}],
            )
    return settings


def _with_addendum(
    base: str | Callable[..., Any] | None, addendum: str
) -> str | Callable[[RunContextWrapper[Any], Agent[Any]], Awaitable[str]]:
    """The agent's instructions followed by the assistant's addendum."""
    if base is None or isinstance(base, str):
        return f"{base}\n\n{addendum}" if base else addendum
    dynamic = base

    async def instructions(context: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        found = dynamic(context, agent)
        text = await found if isinstance(found, Awaitable) else found
        return f"{text}\n\n{addendum}"

    return instructions


def configure(agent: Agent[Any], settings: AssistantSettings) -> Agent[Any]:
    """A clone of the agent with the assistant's instructions, tools, model and settings."""
    changes: dict[str, Any] = {}
    if settings.instructions:
        changes["instructions"] = _with_addendum(agent.instructions, settings.instructions)
    if settings.tools is not None:
        wanted = set(settings.tools)
        changes["tools"] = [t for t in agent.tools if getattr(t, "name", None) in wanted]
    if settings.model is not None:
        changes["model"] = settings.model
    if settings.model_settings is not None:
        given = settings.model_settings.model_dump(exclude_none=True)
        changes["model_settings"] = agent.model_settings.resolve(ModelSettings(**given))
    return agent.clone(**changes)


# --- stored assistants -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """What a run's agent reference resolves to: the catalog agent, and the assistant version
    configuring it (None for a catalog agent's default assistant)."""

    agent: str
    assistant_id: str | None = None
    version: int | None = None


_LATEST = select(ASSISTANTS.c.graph_id, ASSISTANTS.c.version)


def _load_latest(tx: direct.Tx, *, tenant_id: str, assistant_id: str) -> Bound | None:
    row = tx.conn.execute(
        _LATEST.where(and_(ASSISTANTS.c.tenant_id == tenant_id, ASSISTANTS.c.id == assistant_id))
    ).first()
    return Bound(row.graph_id, assistant_id, row.version) if row is not None else None


async def resolve(tenant_id: str, ref: str) -> Bound:
    """The agent a run names: a catalog agent, or the latest version of the tenant's assistant.

    Another tenant's assistant is NotFound, exactly like a missing one.
    """
    name = catalog_name(ref)
    if name is not None:
        return Bound(name)
    assistant_id = as_uuid(ref)
    found = None
    if assistant_id is not None:
        found = await direct.read(
            partial(_load_latest, tenant_id=tenant_id, assistant_id=assistant_id)
        )
    if found is None:
        raise NotFound(f"No agent or assistant {ref!r}.")
    return found


def bind_config(config: Json, bound: Bound) -> Json:
    """A run's config recording the assistant version it runs (and only the one it runs: a
    caller's own `assistant_id`/`assistant_version` keys are dropped)."""
    given = config.get("configurable")
    reserved = isinstance(given, dict) and (ASSISTANT_KEY in given or VERSION_KEY in given)
    if bound.assistant_id is None and not reserved:
        return config
    kept = given if isinstance(given, dict) else {}
    configurable = {k: v for k, v in kept.items() if k not in (ASSISTANT_KEY, VERSION_KEY)}
    if bound.assistant_id is not None:
        configurable[ASSISTANT_KEY] = bound.assistant_id
        configurable[VERSION_KEY] = bound.version
    return {**config, "configurable": configurable}


def bound_of(config: Json | None) -> tuple[str, int] | None:
    """The (assistant id, version) a run's config records, or None."""
    configurable = (config or {}).get("configurable")
    if not isinstance(configurable, dict):
        return None
    assistant_id, version = configurable.get(ASSISTANT_KEY), configurable.get(VERSION_KEY)
    if isinstance(assistant_id, str) and isinstance(version, int):
        return assistant_id, version
    return None


_VERSION = select(VERSIONS.c.config, VERSIONS.c.context, VERSIONS.c.graph_id)


def _load_settings(
    tx: direct.Tx, *, tenant_id: str, assistant_id: str, version: int
) -> tuple[str, Json, Json] | None:
    row = tx.conn.execute(
        _VERSION.where(
            and_(
                VERSIONS.c.tenant_id == tenant_id,
                VERSIONS.c.assistant_id == assistant_id,
                VERSIONS.c.version == version,
            )
        )
    ).first()
    return (row.graph_id, row.config or {}, row.context or {}) if row is not None else None


@dataclass(frozen=True)
class RunAgent:
    """The agent a run executes; the model name its assistant or its declaration chose (None:
    the deployment's); its declaration's turn limit (None: ASCENT_MAX_TURNS) and run hooks."""

    agent: Agent[Any]
    model: str | None = None
    max_turns: int | None = None
    hooks: RunHooks[Any] | None = None


async def agent_for_run(tenant_id: str, agent: str, config: Json | None) -> RunAgent:
    """The run's own copy of its agent, configured by the assistant version it recorded.

    A copy per run: the SDK checks every concurrent run of one Agent object for tool changes on
    each turn, which costs O(runs) each at a thousand runs in flight.
    """
    base = get_agent(agent)
    spec = agent_spec(agent)
    bound = bound_of(config)
    if bound is None:
        return RunAgent(base.clone(), spec.model, spec.max_turns, spec.hooks)
    assistant_id, version = bound
    found = await direct.read(
        partial(_load_settings, tenant_id=tenant_id, assistant_id=assistant_id, version=version)
    )
    if found is None:
        raise NotFound(f"Assistant {assistant_id!r} version {version} no longer exists.")
    graph_id, stored_config, stored_context = found
    settings = settings_of(graph_id, stored_config, stored_context)
    return RunAgent(
        configure(base, settings), settings.model or spec.model, spec.max_turns, spec.hooks
    )
