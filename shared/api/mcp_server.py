"""Ascent as an MCP server: `/api/mcp` speaks MCP streamable HTTP (stateless, JSON responses).

The official `mcp` SDK does all of the protocol: an `MCPServer` (the SDK's FastMCP) declares
the tools, and a `StreamableHTTPSessionManager` in stateless mode answers each HTTP request.
The bridge is one ASGI call per request: the Functions trigger has already authenticated the
request (`principal_of`) and read its body, so `handle` hands the request's scope to a fresh
stateless session manager, collects what it sends, and returns it as one Starlette `Response`.

Why a session manager per request: in stateless mode it keeps nothing between requests, but it
must run inside its own `run()` context (a task group). A function has no lifespan to hold one
open for the process, and a manager per request ends with its request on every event loop, so
nothing outlives it. The `MCPServer` itself (tool schemas) is built once, on the first request.
JSON responses rather than SSE: every tool answers once, so one body is enough, and the answer
is an ordinary response the `api` wrapper can decorate (CORS).

Tools act as the request's principal, which the trigger stores in the ASGI scope's `state` and
each tool reads from its `Context` (the SDK hands tools the Starlette request):

- `run_<agent>` for each catalog agent, and `run_tenant_assistant` for any of the tenant's
  assistants (or a catalog agent by name; `list_assistants` names them): run it on an input,
  in a new thread or the given one, through the one run engine (shared/api/simple.py). A run
  that pauses for approval answers `status: "interrupted"` with the pending review ids;
- `remember`, `recall`, `search_memories`: the caller's own long-term memories, the same
  user-scoped namespace the agents' memory tools use (shared/agents/memory_tools.py);
- `list_pending_reviews`, `decide_review`: the reviews API (shared/runs/reviews.py), with its
  authorization (reviews on threads the principal sees).

A failure the caller can fix (a bad argument, a missing or foreign thread, a review already
decided) is an MCP tool error (`isError: true`) with a safe message, never a crash.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Annotated, Any, Final, Literal

from fastapi import Request, Response
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field, ValidationError
from starlette.types import Message, Receive, Scope

from shared.agents import catalog
from shared.agents.memory_tools import (
    MAX_FACT_CHARS,
    RECALL_LIMIT,
    RECALL_MIN_SCORE,
    fact_key,
    user_namespace,
)
from shared.api import assistants, simple
from shared.api.schemas import AgentRunRequest
from shared.core.errors import AscentError
from shared.memory import store as memory
from shared.runs import reviews, service
from shared.security.auth import Principal

Json = dict[str, Any]

SERVER_NAME: Final = "ascent"
# Where the trigger leaves the authenticated principal for the tools (the ASGI scope's state).
PRINCIPAL_STATE: Final = "ascent_principal"
# Response headers the Functions host computes itself.
_HOP_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection"})

ThreadId = Annotated[
    uuid.UUID | None,
    Field(description="Continue this thread (from an earlier answer); omit for a new one."),
]
AgentInput = Annotated[str, Field(min_length=1, description="The user's message to the agent.")]


class PendingReview(BaseModel):
    """A review a paused run waits for: decide it with `decide_review`."""

    review_id: str
    kind: str = Field(description="`tool` (a tool call to approve) or `output` (an answer).")
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    reason: str | None = None


class AgentAnswer(BaseModel):
    """What an agent tool returns: the answer, or that the run waits for approval."""

    status: str = Field(description="`success`, or `interrupted` (paused for approval).")
    output: str = Field(description="The agent's answer (what it produced so far when paused).")
    thread_id: str = Field(description="Pass it back as `thread_id` to continue the thread.")
    run_id: str
    agent: str
    last_agent: str | None = None
    pending_reviews: list[PendingReview] = Field(default_factory=list)
    message: str = Field(description="The answer, or what the caller has to do next.")


# --- errors ----------------------------------------------------------------------------------


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn Ascent's problems and invalid values into MCP tool errors with a safe message."""
    try:
        yield
    except AscentError as error:
        raise ToolError(f"{error.title}: {error.detail}") from None
    except ValidationError as exc:
        # Where and why, never the offending value (it may be a secret), as read_json does.
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise ToolError(f"Invalid arguments: {where}") from None


def principal_from(ctx: Context) -> Principal:
    """The principal the trigger authenticated for this request."""
    request = ctx.request_context.request
    found = getattr(getattr(request, "state", None), PRINCIPAL_STATE, None)
    if not isinstance(found, Principal):
        # Only reachable if the server is served without `handle` (which always sets it).
        raise ToolError("Not authenticated.")
    return found


def memory_owner(principal: Principal) -> str:
    """Whose memories the caller's are: its user, else its API key (as a run's `user_id`)."""
    return principal.user_id or principal.key_id


# --- agents ----------------------------------------------------------------------------------


async def run_agent(
    principal: Principal, agent: str, text: str, thread_id: uuid.UUID | None
) -> AgentAnswer:
    """Run `agent` through the run engine, as `POST /agents/{agent}/runs` does, and answer."""
    with tool_errors():
        body = AgentRunRequest(input=text, thread_id=thread_id)
        answer = await simple.run_agent(principal, agent, body)
    pending = [PendingReview(**i.model_dump()) for i in answer.interrupts]
    if answer.status == "interrupted" and pending:
        ids = ", ".join(p.review_id for p in pending)
        message = (
            f"Approval pending: the run paused for review {ids}. Decide it with "
            "`decide_review`; the run then continues in the background."
        )
    elif answer.status == "interrupted":
        message = "The run was cancelled before it finished."
    else:
        message = answer.output
    return AgentAnswer(
        status=answer.status,
        output=answer.output,
        thread_id=answer.thread_id,
        run_id=answer.run_id,
        agent=answer.agent,
        last_agent=answer.last_agent,
        pending_reviews=pending,
        message=message,
    )


def _add_catalog_tool(server: MCPServer[Any], name: str, description: str) -> None:
    """Register `run_<name>`: the catalog agent `name` as a tool."""

    async def run(input: AgentInput, ctx: Context, thread_id: ThreadId = None) -> AgentAnswer:
        return await run_agent(principal_from(ctx), name, input, thread_id)

    server.add_tool(
        run,
        name=f"run_{name}",
        description=f"Run the {name!r} agent on an input, in a new thread or the given one. "
        f"{description}",
    )


async def run_tenant_assistant(
    assistant_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=100,
            description="An assistant id (`/api/assistants/search`) or a catalog agent name.",
        ),
    ],
    input: AgentInput,
    ctx: Context,
    thread_id: ThreadId = None,
) -> AgentAnswer:
    """Run one of the tenant's assistants on an input, in a new thread or the given one."""
    return await run_agent(principal_from(ctx), assistant_id, input, thread_id)


async def list_assistants(
    ctx: Context,
    graph_id: Annotated[str | None, Field(max_length=100, description="Only this agent's.")] = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
    offset: Annotated[int, Field(ge=0)] = 0,
) -> Json:
    """The tenant's assistants and the catalog's defaults, newest first: ids for
    `run_tenant_assistant` (as `POST /api/assistants/search`)."""
    principal = principal_from(ctx)
    with tool_errors():
        body = assistants.AssistantSearch(graph_id=graph_id, limit=limit, offset=offset)
        found, _ = await assistants.search(principal, body)
    keep = ("assistant_id", "graph_id", "name", "description", "version")
    return {"assistants": [{k: a.get(k) for k in keep} for a in found]}


# --- memory ----------------------------------------------------------------------------------


async def remember(
    fact: Annotated[
        str,
        Field(min_length=1, max_length=MAX_FACT_CHARS, description="One self-contained sentence."),
    ],
    ctx: Context,
) -> Json:
    """Save a lasting fact about the caller to long-term memory (agents recall it too)."""
    principal = principal_from(ctx)
    if not fact.strip():
        raise ToolError("Invalid arguments: fact must not be blank")
    key = fact_key(fact)
    with tool_errors():
        await memory.put(
            tenant_id=principal.tenant_id,
            namespace=user_namespace(memory_owner(principal)),
            key=key,
            value={"text": fact.strip(), "kind": "fact"},
        )
    return {"key": key, "text": fact.strip()}


async def recall(
    query: Annotated[str, Field(min_length=1, max_length=500, description="What to look for.")],
    ctx: Context,
) -> Json:
    """Recall the caller's facts relevant to a question, most relevant first."""
    principal = principal_from(ctx)
    with tool_errors():
        items = await memory.search(
            tenant_id=principal.tenant_id,
            namespace_prefix=user_namespace(memory_owner(principal)),
            query=query,
            limit=RECALL_LIMIT,
        )
    # The same relevance floor as the agents' `recall`, so both answer alike.
    facts = [
        str(i.value.get("text", i.value))
        for i in items
        if i.score is None or i.score >= RECALL_MIN_SCORE
    ]
    return {"facts": facts}


async def search_memories(
    ctx: Context,
    query: Annotated[
        str | None, Field(max_length=500, description="Rank by meaning; omit to list.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
    offset: Annotated[int, Field(ge=0, le=10_000)] = 0,
) -> Json:
    """Search the caller's long-term memories: items with keys, values, times and scores."""
    principal = principal_from(ctx)
    with tool_errors():
        items = await memory.search(
            tenant_id=principal.tenant_id,
            namespace_prefix=user_namespace(memory_owner(principal)),
            query=query or None,
            limit=limit,
            offset=offset,
        )
    return {"items": [i.to_api() for i in items]}


# --- reviews ---------------------------------------------------------------------------------


async def list_pending_reviews(
    ctx: Context,
    agent: Annotated[str | None, Field(max_length=100, description="Only this agent's.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    offset: Annotated[int, Field(ge=0)] = 0,
) -> Json:
    """The pending reviews on threads the caller sees, oldest first (as `GET /api/reviews`)."""
    principal = principal_from(ctx)
    with tool_errors():
        query = reviews.ReviewQuery(agent=agent, limit=limit, offset=offset)
        found = await reviews.list_reviews(principal, query)
    return {"reviews": found}


async def decide_review(
    review_id: uuid.UUID,
    decision: Literal["approve", "reject"],
    ctx: Context,
    comment: Annotated[str | None, Field(max_length=4000)] = None,
    always_approve_tool_for_thread: bool = False,
) -> Json:
    """Approve or reject a pending review, once; the run then resumes in the background."""
    principal = principal_from(ctx)
    with tool_errors():
        body = reviews.ReviewDecision(
            decision=decision,
            comment=comment,
            always_approve_tool_for_thread=always_approve_tool_for_thread,
        )
        decided = await reviews.decide(principal, str(review_id), body)
        if decided.resume is not None:
            await service.resume([decided.resume])
    return decided.review


# --- the server and the bridge ---------------------------------------------------------------


@cache
def build_server() -> MCPServer[Any]:
    """The MCP server and its tools, built once per process (on the first request)."""
    # MCPServer calls logging.basicConfig, a no-op here: the Functions worker and the dev host
    # have configured the root logger before any request arrives.
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions=(
            "Ascent's agents, long-term memory and human reviews, acting as the caller's API "
            "key or user within its tenant."
        ),
    )
    for spec in catalog().values():
        _add_catalog_tool(server, spec.name, spec.description)
    for tool in (
        run_tenant_assistant,
        list_assistants,
        remember,
        recall,
        search_memories,
        list_pending_reviews,
        decide_review,
    ):
        server.add_tool(tool)
    return server


def _replay(body: bytes) -> Receive:
    """An ASGI `receive` that yields a body already read (once), then a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def handle(req: Request, principal: Principal, body: bytes) -> Response:
    """Answer one MCP request (already authenticated, body already read) as `principal`."""
    server = build_server()
    manager = StreamableHTTPSessionManager(
        # The SDK's own in-memory client reaches the low-level server the same way: MCPServer
        # offers no public accessor, and its `streamable_http_app()` binds one manager for life.
        app=server._lowlevel_server,
        stateless=True,
        json_response=True,
        # Every request carries a bearer credential, never an ambient cookie, so a rebinding
        # page gains nothing; a Host allow-list would have to name every domain Ascent serves.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    scope: Scope = dict(req.scope)
    scope["state"] = {**scope.get("state", {}), PRINCIPAL_STATE: principal}
    start: Message = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    async with manager.run():
        await manager.handle_request(scope, _replay(body), send)
    content = b"".join(chunks)
    headers = _headers(start.get("headers", []))
    if not content:
        # A notification's 202 has no body, so no media type (the SDK labels it JSON anyway).
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Response(content=content, status_code=int(start.get("status", 500)), headers=headers)


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The SDK's ASGI response headers, less those the host sets itself."""
    pairs = ((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
    return {k: v for k, v in pairs if k.lower() not in _HOP_HEADERS}
