"""LangGraph assistants (`/assistants`): versioned, per-tenant configurations of catalog agents.

An assistant names a catalog agent (`graph_id`) and configures it (shared/agents/configured.py
says how: model, instructions addendum, tool subset, model settings). Every change writes a new
version row and moves the assistant's `version` pointer to it; `set_latest` moves it back to
any version. Runs name an assistant by its id (`assistant_id`) and run its latest version.

Catalog agents are read-only default assistants: id `uuid5(NAMESPACE_GRAPH, graph_id)` (or
the graph name), version 1, `metadata.created_by = "system"`. Changing or deleting one is 409.

Tenancy: every row is keyed by tenant; another tenant's assistant answers 404 like a missing
one. Audit: create, update, set latest and delete each write an `assistant_audit` row (who,
when, which version, what changed), kept after the assistant is deleted
(`GET /assistants/{assistant_id}/audit`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, func, select

from shared.agents import AgentSpec, catalog, configured, get_agent
from shared.api.protocol import MAX_PAGE, agent_schemas
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.core.validation import MAX_OFFSET, JsonInt
from shared.db.assistant_models import Assistant, AssistantAudit, AssistantVersion
from shared.db.engine import db_session
from shared.db.models import utcnow
from shared.db.types import as_utc
from shared.db.views import iso
from shared.security.auth import Principal

Json = dict[str, Any]
SortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]
SelectField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
# When the catalog's default assistants were "created": fixed, so their JSON never changes.
CATALOG_CREATED: Final = datetime(2026, 1, 1, tzinfo=UTC)
UNTITLED: Final = "Untitled"
# A concurrent update takes the same next version number; the loser retries this often.
VERSION_RETRIES: Final = 3


# --- request bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    """Base of the bodies: unknown LangGraph fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class Page(_Body):
    """`limit` and `offset` of the listing endpoints."""

    limit: JsonInt = Field(10, ge=1, le=MAX_PAGE)
    offset: JsonInt = Field(0, ge=0, le=MAX_OFFSET)


def _graph_ids(schema: dict[str, Any]) -> None:
    """List the catalog agents an assistant can configure, when the document is generated (the
    catalog is the user's, loaded at first use, never at import)."""
    schema["enum"] = sorted(catalog())


class AssistantCreate(_Body):
    """Body of `POST /assistants`."""

    graph_id: str = Field(min_length=1, max_length=100, json_schema_extra=_graph_ids)
    assistant_id: uuid.UUID | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class AssistantPatch(_Body):
    """Body of `PATCH /assistants/{assistant_id}`: a new version; absent fields are kept,
    metadata is merged."""

    graph_id: str | None = Field(None, min_length=1, max_length=100)
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class AssistantCount(_Body):
    """Body of `POST /assistants/count`."""

    metadata: Json | None = None
    graph_id: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)


class AssistantSearch(Page):
    """Body of `POST /assistants/search`."""

    metadata: Json | None = None
    graph_id: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None


class VersionSearch(Page):
    """Body of `POST /assistants/{assistant_id}/versions`."""

    metadata: Json | None = None


class SetLatest(_Body):
    """Body of `POST /assistants/{assistant_id}/latest`."""

    version: int = Field(ge=1, le=2**31 - 1)


# --- response shapes (documented in the OpenAPI document) -------------------------------------


class AssistantVersionOut(BaseModel):
    """One version of an assistant (LangGraph's `AssistantVersion`)."""

    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json
    version: int
    name: str
    description: str | None
    created_at: datetime


class AssistantOut(AssistantVersionOut):
    """An assistant: its latest version's fields (LangGraph's `Assistant`)."""

    updated_at: datetime


class AssistantVersionList(RootModel[list[AssistantVersionOut]]):
    """Versions of an assistant, newest first."""


class AssistantSelected(BaseModel):
    """A search result: every field of an assistant, or those `select` asked for."""

    assistant_id: str | None = None
    graph_id: str | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    version: int | None = None
    name: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class AssistantSearchResult(RootModel[list[AssistantSelected]]):
    """The assistants a search matched, in the requested order."""


class GraphNode(BaseModel):
    """A node of an assistant's graph: `__start__`, `__end__`, the agent, a tool, a handoff."""

    id: str
    type: str
    data: Any


class GraphEdge(BaseModel):
    """An edge of an assistant's graph (`conditional`: the model decides whether it is taken)."""

    source: str
    target: str
    conditional: bool | None = None


class GraphOut(BaseModel):
    """An assistant's agent as a graph."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]


class SchemasOut(BaseModel):
    """The JSON Schemas of an assistant's graph (LangGraph's `GraphSchema`)."""

    graph_id: str
    input_schema: Json | None
    output_schema: Json | None
    state_schema: Json | None
    config_schema: Json | None
    context_schema: Json | None


class AuditEntry(BaseModel):
    """One change of an assistant: what, by whom, to which version, when."""

    assistant_id: str
    action: Literal["created", "updated", "latest", "deleted"]
    actor: str
    version: int | None
    details: Json
    at: datetime


class AuditTrail(RootModel[list[AuditEntry]]):
    """An assistant's audit trail, oldest first."""


# --- shapes ----------------------------------------------------------------------------------


def catalog_json(spec: AgentSpec) -> Json:
    """A catalog agent's default assistant."""
    created = iso(CATALOG_CREATED)
    return {
        "assistant_id": configured.catalog_assistant_id(spec.name),
        "graph_id": spec.name,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "name": spec.name,
        "description": spec.description,
        "created_at": created,
        "updated_at": created,
    }


def assistant_json(row: Assistant) -> Json:
    """A stored assistant (its latest version's fields)."""
    return {
        "assistant_id": row.id,
        "graph_id": row.graph_id,
        "config": row.config or {},
        "context": row.context or {},
        "metadata": row.metadata_ or {},
        "version": row.version,
        "name": row.name,
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def version_json(row: AssistantVersion) -> Json:
    """One version of an assistant."""
    return {
        "assistant_id": row.assistant_id,
        "graph_id": row.graph_id,
        "config": row.config or {},
        "context": row.context or {},
        "metadata": row.metadata_ or {},
        "version": row.version,
        "name": row.name,
        "description": row.description,
        "created_at": iso(row.created_at),
    }


def _matches(have: Json | None, want: Json | None) -> bool:
    """Containment filter: every key of `want` is in `have` with an equal value."""
    return all((have or {}).get(k) == v for k, v in (want or {}).items())


def _actor(principal: Principal) -> str:
    return principal.user_id or principal.key_id


def _audit(
    principal: Principal, assistant_id: str, action: str, version: int | None, **details: Any
) -> AssistantAudit:
    return AssistantAudit(
        tenant_id=principal.tenant_id,
        assistant_id=assistant_id,
        action=action,
        actor=_actor(principal),
        version=version,
        details=details or None,
    )


def _check_graph(graph_id: str) -> None:
    if graph_id not in catalog():
        raise ValidationFailed(
            f"No agent (graph) {graph_id!r}; use one of {sorted(catalog())}.",
            errors=[{"loc": ["graph_id"], "msg": "unknown graph"}],
        )


def _read_only(name: str) -> Conflict:
    return Conflict(
        f"{name!r} is a catalog agent's default assistant and cannot be changed; create an "
        f"assistant with graph_id {name!r} instead."
    )


def _stored_id(assistant_id: str) -> str:
    """A stored assistant's id from a path (NotFound when it is not a UUID)."""
    found = configured.as_uuid(assistant_id)
    if found is None:
        raise NotFound(f"No assistant {assistant_id!r}.")
    return found


async def _row(principal: Principal, assistant_id: str) -> Assistant:
    """The tenant's assistant, or NotFound (also for another tenant's)."""
    stored = _stored_id(assistant_id)
    async with db_session() as db:
        row = await db.get(Assistant, (principal.tenant_id, stored))
    if row is None:
        raise NotFound(f"No assistant {assistant_id!r}.")
    return row


# --- operations ------------------------------------------------------------------------------


async def create(principal: Principal, body: AssistantCreate) -> Json:
    """Create an assistant (version 1); `if_exists` decides when the id is taken."""
    _check_graph(body.graph_id)
    configured.settings_of(body.graph_id, body.config, body.context)
    assistant_id = str(body.assistant_id or uuid.uuid4())
    name = configured.catalog_name(assistant_id)
    if name is not None:
        if body.if_exists == "do_nothing":
            return catalog_json(catalog()[name])
        raise Conflict(f"Assistant {assistant_id!r} already exists.")
    now = utcnow()
    fields: Json = {
        "tenant_id": principal.tenant_id,
        "graph_id": body.graph_id,
        "name": body.name or UNTITLED,
        "description": body.description,
        "metadata_": dict(body.metadata or {}),
        "config": dict(body.config or {}),
        "context": dict(body.context or {}),
        "created_at": now,
    }
    row = Assistant(id=assistant_id, version=1, updated_at=now, **fields)
    try:
        async with db_session() as db:
            db.add(row)
            await db.flush()  # the assistant first: its id being taken is the likely conflict
            db.add(AssistantVersion(assistant_id=assistant_id, version=1, **fields))
            db.add(_audit(principal, assistant_id, "created", 1, graph_id=body.graph_id))
            await db.commit()
            await db.refresh(row)
    except IntegrityError:
        if body.if_exists == "do_nothing":
            return assistant_json(await _row(principal, assistant_id))
        raise Conflict(f"Assistant {assistant_id!r} already exists.") from None
    return assistant_json(row)


async def get(principal: Principal, assistant_id: str) -> Json:
    """An assistant: a catalog default (by id or graph name) or the tenant's own."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        return catalog_json(catalog()[name])
    return assistant_json(await _row(principal, assistant_id))


async def update(principal: Principal, assistant_id: str, body: AssistantPatch) -> Json:
    """Write a new version from the latest one and the given fields; it becomes the latest."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        raise _read_only(name)
    for _ in range(VERSION_RETRIES):
        try:
            return await _update_once(principal, assistant_id, body)
        except IntegrityError:
            continue  # another update took this version number: build on the newer one
    raise Conflict("The assistant is being updated concurrently; try again.")


async def _update_once(principal: Principal, assistant_id: str, body: AssistantPatch) -> Json:
    stored = _stored_id(assistant_id)
    async with db_session() as db:
        row = await db.get(Assistant, (principal.tenant_id, stored))
        if row is None:
            raise NotFound(f"No assistant {assistant_id!r}.")
        graph_id = body.graph_id or row.graph_id
        _check_graph(graph_id)
        config = dict(body.config) if body.config is not None else dict(row.config or {})
        context = dict(body.context) if body.context is not None else dict(row.context or {})
        configured.settings_of(graph_id, config, context)
        latest = (
            await db.exec(
                select(func.max(AssistantVersion.version)).where(
                    AssistantVersion.tenant_id == principal.tenant_id,
                    AssistantVersion.assistant_id == stored,
                )
            )
        ).one()
        version = int(latest or 0) + 1
        now = utcnow()
        fields: Json = {
            "graph_id": graph_id,
            "name": body.name or row.name,
            "description": body.description if body.description is not None else row.description,
            "metadata_": {**(row.metadata_ or {}), **(body.metadata or {})},
            "config": config,
            "context": context,
        }
        db.add(
            AssistantVersion(
                tenant_id=principal.tenant_id,
                assistant_id=stored,
                version=version,
                created_at=now,
                **fields,
            )
        )
        for key, value in fields.items():
            setattr(row, key, value)
        row.version, row.updated_at = version, now
        changed = sorted(k for k in body.model_fields_set if getattr(body, k) is not None)
        db.add(_audit(principal, stored, "updated", version, fields=changed))
        await db.commit()
        await db.refresh(row)
    return assistant_json(row)


async def delete_assistant(principal: Principal, assistant_id: str) -> None:
    """Delete an assistant and all its versions (its audit trail stays)."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        raise _read_only(name)
    row = await _row(principal, assistant_id)
    async with db_session() as db:
        await db.exec(
            delete(AssistantVersion).where(
                col(AssistantVersion.tenant_id) == principal.tenant_id,
                col(AssistantVersion.assistant_id) == row.id,
            )
        )
        await db.exec(
            delete(Assistant).where(
                col(Assistant.tenant_id) == principal.tenant_id, col(Assistant.id) == row.id
            )
        )
        db.add(_audit(principal, row.id, "deleted", row.version))
        await db.commit()


async def set_latest(principal: Principal, assistant_id: str, body: SetLatest) -> Json:
    """Make one of the assistant's versions its latest (what runs use)."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        raise _read_only(name)
    stored = _stored_id(assistant_id)
    async with db_session() as db:
        row = await db.get(Assistant, (principal.tenant_id, stored))
        if row is None:
            raise NotFound(f"No assistant {assistant_id!r}.")
        chosen = await db.get(AssistantVersion, (principal.tenant_id, stored, body.version))
        if chosen is None:
            raise NotFound(f"Assistant {assistant_id!r} has no version {body.version}.")
        previous = row.version
        row.graph_id, row.name, row.description = chosen.graph_id, chosen.name, chosen.description
        row.metadata_ = dict(chosen.metadata_ or {})
        row.config, row.context = dict(chosen.config or {}), dict(chosen.context or {})
        row.version, row.updated_at = chosen.version, utcnow()
        db.add(_audit(principal, stored, "latest", chosen.version, previous=previous))
        await db.commit()
        await db.refresh(row)
    return assistant_json(row)


async def versions(principal: Principal, assistant_id: str, body: VersionSearch) -> list[Json]:
    """An assistant's versions matching the metadata, newest first."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        found = [catalog_json(catalog()[name])]
    else:
        row = await _row(principal, assistant_id)
        async with db_session() as db:
            rows = (
                await db.exec(
                    select(AssistantVersion)
                    .where(
                        AssistantVersion.tenant_id == principal.tenant_id,
                        AssistantVersion.assistant_id == row.id,
                    )
                    .order_by(col(AssistantVersion.version).desc())
                )
            ).all()
        found = [version_json(v) for v in rows]
    for item in found:
        item.pop("updated_at", None)
    matching = [v for v in found if _matches(v["metadata"], body.metadata)]
    return matching[body.offset : body.offset + body.limit]


def _filtered(
    all_: list[Json], graph_id: str | None, name: str | None, metadata: Json | None
) -> list[Json]:
    return [
        a
        for a in all_
        if (graph_id is None or a["graph_id"] == graph_id)
        and (name is None or name.lower() in str(a["name"]).lower())
        and _matches(a["metadata"], metadata)
    ]


async def _all(principal: Principal, graph_id: str | None) -> list[Json]:
    """The catalog's default assistants and the tenant's own (of one graph, when given)."""
    stmt = select(Assistant).where(Assistant.tenant_id == principal.tenant_id)
    if graph_id is not None:
        stmt = stmt.where(Assistant.graph_id == graph_id)
    async with db_session() as db:
        rows = (await db.exec(stmt)).all()
    return [catalog_json(spec) for spec in catalog().values()] + [assistant_json(r) for r in rows]


async def search(principal: Principal, body: AssistantSearch) -> tuple[list[Json], int | None]:
    """The assistants matching graph, name (substring) and metadata, sorted (newest first by
    default); and the offset of the next page, when there is one."""
    found = _filtered(await _all(principal, body.graph_id), body.graph_id, body.name, body.metadata)
    key: SortBy = body.sort_by or "created_at"
    descending = (body.sort_order or ("desc" if body.sort_by is None else "asc")) == "desc"

    def order(a: Json) -> tuple[Any, str]:
        value = a[key]
        if key in ("created_at", "updated_at"):
            return (as_utc(datetime.fromisoformat(value)), a["assistant_id"])
        return (str(value), a["assistant_id"])

    found.sort(key=order, reverse=descending)
    page = found[body.offset : body.offset + body.limit]
    more = body.offset + body.limit < len(found)
    if body.select:
        page = [{k: a[k] for k in body.select} for a in page]
    return page, (body.offset + body.limit if more else None)


async def count(principal: Principal, body: AssistantCount) -> int:
    """How many assistants match graph, name (substring) and metadata."""
    return len(
        _filtered(await _all(principal, body.graph_id), body.graph_id, body.name, body.metadata)
    )


async def _configured_agent(principal: Principal, assistant_id: str) -> tuple[str, Any]:
    """The assistant's graph id and its agent as its latest version configures it."""
    name = configured.catalog_name(assistant_id)
    if name is not None:
        return name, get_agent(name)
    row = await _row(principal, assistant_id)
    settings = configured.settings_of(row.graph_id, row.config, row.context)
    return row.graph_id, configured.configure(get_agent(row.graph_id), settings)


async def graph(principal: Principal, assistant_id: str) -> Json:
    """The assistant's agent as a graph: the agent, its tools and its handoffs as nodes."""
    graph_id, agent = await _configured_agent(principal, assistant_id)
    nodes: list[Json] = [
        {"id": "__start__", "type": "schema", "data": "__start__"},
        {"id": graph_id, "type": "runnable", "data": {"name": agent.name, "kind": "agent"}},
    ]
    edges: list[Json] = [{"source": "__start__", "target": graph_id}]
    for tool in agent.tools:
        tool_name = str(getattr(tool, "name", type(tool).__name__))
        node = f"tools:{tool_name}"
        nodes.append({"id": node, "type": "runnable", "data": {"name": tool_name, "kind": "tool"}})
        edges.append({"source": graph_id, "target": node, "conditional": True})
        edges.append({"source": node, "target": graph_id})
    for handoff in agent.handoffs:
        target = str(getattr(handoff, "name", None) or getattr(handoff, "agent_name", ""))
        node = f"handoff:{target}"
        nodes.append({"id": node, "type": "runnable", "data": {"name": target, "kind": "handoff"}})
        edges.append({"source": graph_id, "target": node, "conditional": True})
        edges.append({"source": node, "target": "__end__"})
    nodes.append({"id": "__end__", "type": "schema", "data": "__end__"})
    edges.append({"source": graph_id, "target": "__end__", "conditional": True})
    return {"nodes": nodes, "edges": edges}


async def subgraphs(principal: Principal, assistant_id: str) -> Json:
    """The assistant's subgraphs: none (handoffs are nodes of its graph)."""
    await get(principal, assistant_id)
    return {}


def _settings_schema(graph_id: str) -> Json:
    """JSON Schema of the keys an assistant of this graph may configure."""
    return {
        "type": "object",
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 100},
            "instructions": {
                "type": "string",
                "maxLength": 20000,
                "description": "Appended to the agent's own instructions.",
            },
            "tools": {
                "type": "array",
                "items": {"type": "string", "enum": configured.tool_names(graph_id)},
                "description": "The subset of the agent's tools it may call.",
            },
            "model_settings": configured.ModelSettingsIn.model_json_schema(),
        },
    }


async def schemas(principal: Principal, assistant_id: str) -> Json:
    """The assistant's graph's input, output, state, config and context JSON Schemas."""
    graph_id = (await get(principal, assistant_id))["graph_id"]
    base = agent_schemas(graph_id)
    settings = _settings_schema(graph_id)
    config_schema = {
        "type": "object",
        "properties": {**base["config_schema"]["properties"], "configurable": settings},
    }
    return {
        "graph_id": graph_id,
        "input_schema": base["input_schema"],
        "output_schema": base["output_schema"],
        "state_schema": base["state_schema"],
        "config_schema": config_schema,
        "context_schema": settings,
    }


async def audit(principal: Principal, assistant_id: str) -> list[Json]:
    """An assistant's audit trail, oldest first (also after it was deleted)."""
    if configured.catalog_name(assistant_id) is not None:
        return []
    stored = _stored_id(assistant_id)
    async with db_session() as db:
        rows = (
            await db.exec(
                select(AssistantAudit)
                .where(
                    AssistantAudit.tenant_id == principal.tenant_id,
                    AssistantAudit.assistant_id == stored,
                )
                .order_by(col(AssistantAudit.at), col(AssistantAudit.id))
            )
        ).all()
    if not rows:
        raise NotFound(f"No assistant {assistant_id!r}.")
    return [
        {
            "assistant_id": r.assistant_id,
            "action": r.action,
            "actor": r.actor,
            "version": r.version,
            "details": r.details or {},
            "at": iso(r.at),
        }
        for r in rows
    ]
