"""Agents calling tools on MCP servers (streamable HTTP), through the Agents SDK's MCP support.

Declaring. An agent declares each MCP server it uses as an `McpServerDecl`: its URL, the
headers it sends (each value named in the secret setting ASCENT_MCP_SECRETS and read from it
when connecting, never stored in the declaration nor logged), an allow or deny list of tool
names, a timeout, and a risk class per tool (`read`, `write`, `spend`:
shared/security/tool_policy.py). A tool the declaration does not classify is `spend` (fail
closed). The demo agents declare the shared tool server
(`python -m mcp_tools`) when ASCENT_MCP_TOOLS_URL is set, and any agent gets more servers from
ASCENT_MCP_SERVERS (JSON, by agent name).

Approval. A `write`/`spend` MCP tool gets the same `needs_approval` check as a catalog tool
(shared/security/tool_approval.py, with the tenant's policy and "always approve in this
thread"): its call pauses the run, and the stored `RunState` resumes on any instance exactly as
for `issue_refund`. Each call carries an idempotency key (`_meta`, `IDEMPOTENCY_KEY`: the run id,
the tool and a hash of its arguments), so a server that honours it never repeats a write a
retried run asks for again.

Connections. The catalog's agents hold a `DeclaredServer` (no connection of its own): each
list or call finds its connection at use. ASCENT_MCP_CONNECTIONS=`pooled` (the default) keeps
one connected client per server per process and event loop (at most `POOL_BOUND`, the least
recently used closed first), reused by every run; `per_run` opens them inside the run's
`mcp_scope()` and closes them when the run ends. bench/mcp_overhead.py measures both: pooled
costs about 2x an in-process tool call, per-run about 13x (its handshake). The SDK sends one
request at a time on a pooled client, so concurrent runs queue on it (each bounded by the
timeout): fine for fast tools; with slow ones, `per_run` trades the queue for the handshake.

Tool lists. A pooled client caches its server's tool list (the SDK's cache) and lists it again
after ASCENT_MCP_TOOLS_TTL_SECONDS, or at once after a failure drops the client: a changed
tool list is picked up within the TTL, by a new process, or after any failure. A per-run
client lists once per run.

Failures. A server that cannot be reached, does not answer within the declaration's timeout,
fails the protocol, or answers a call with an error raises `McpServerFailed`, naming the
server and what went wrong (never its URL or headers); the run engine ends the run `error`
with that message in its `error` event (shared/runs/engine.py `failure_of`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from contextvars import Context, ContextVar
from typing import Any, Final, TypeVar

from agents import Agent, AgentBase, FunctionTool, RunContextWrapper
from agents.mcp import MCPServer, MCPServerStreamableHttp, MCPToolMetaContext
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult
from mcp.types import Tool as MCPTool
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.core.settings import get_settings
from shared.security.tool_approval import requires_approval
from shared.security.tool_policy import ToolClass

log = logging.getLogger(__name__)

T = TypeVar("T")

# The `_meta` key of every tool call: "<run id>/<tool>/<arguments hash>", stable when retried.
IDEMPOTENCY_KEY: Final = "ascent/idempotency_key"
# Most connected clients one process keeps (pooled mode), least recently used closed first.
POOL_BOUND: Final = 32
# The shared tool server's tools (mcp_tools/), by the demo agent that uses them.
SHARED_TOOLS: Final[dict[str, tuple[str, ...]]] = {
    "assistant": ("calculate", "current_time"),
    "tech_support": ("lookup_error",),
}
MAX_REASON_CHARS: Final = 300
# The header carrying ASCENT_MCP_TOOLS_TOKEN to the shared tool server (mcp_tools/).
TOOLS_KEY_HEADER: Final = "X-Ascent-Tools-Key"
# The name ASCENT_MCP_TOOLS_TOKEN goes by among the header secrets (a name, not a secret).
TOOLS_SECRET: Final = "mcp_tools"  # noqa: S105


class McpServerFailed(Exception):
    """An MCP server the run needs is down, too slow, or answered with an error."""

    def __init__(self, server: str, reason: str) -> None:
        """Name the server (never its URL or headers) and what went wrong."""
        self.server = server
        self.reason = reason[:MAX_REASON_CHARS]
        super().__init__(f"MCP server {server!r} {self.reason}")


class McpServerDecl(BaseModel):
    """One MCP server an agent uses, as its declaration (or ASCENT_MCP_SERVERS) states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    url: str = Field(pattern=r"^https?://", max_length=2000)
    # Header name -> the name of its value in ASCENT_MCP_SECRETS (read when connecting).
    headers: dict[str, str] = Field(default_factory=dict)
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Risk class per tool; a tool not listed here is `spend` (fail closed).
    tools: dict[str, ToolClass] = Field(default_factory=dict)

    def class_of(self, tool: str) -> ToolClass:
        """The tool's risk class: declared, else `spend`."""
        return self.tools.get(tool, "spend")

    def header_values(self) -> dict[str, str]:
        """The headers to send, their values read from ASCENT_MCP_SECRETS now (never logged).

        Only that setting: a declaration cannot make another setting (a model key, say) leave
        the process.
        """
        try:
            secrets = mcp_secrets()
        except ValueError as exc:
            raise McpServerFailed(self.name, f"cannot read its header secrets: {exc}") from None
        values: dict[str, str] = {}
        for header, secret_name in self.headers.items():
            secret = secrets.get(secret_name)
            if not secret:
                raise McpServerFailed(self.name, f"has no secret for header {header!r}")
            values[header] = secret
        return values


def mcp_secrets() -> dict[str, str]:
    """ASCENT_MCP_SECRETS as names and values (the shared tool server's token as `mcp_tools`)."""
    settings = get_settings()
    found: dict[str, str] = {}
    if settings.mcp_secrets is not None:
        try:
            given: Any = json.loads(settings.mcp_secrets.get_secret_value())
        except ValueError:
            # Never the exception's text: it would quote the secret.
            raise ValueError("ASCENT_MCP_SECRETS is not a JSON object") from None
        if not isinstance(given, dict):
            raise ValueError("ASCENT_MCP_SECRETS is not a JSON object")
        found.update({str(k): str(v) for k, v in given.items() if isinstance(v, str)})
    if settings.mcp_tools_token is not None:
        found[TOOLS_SECRET] = settings.mcp_tools_token.get_secret_value()
    return found


_DECLARED = TypeAdapter(dict[str, list[McpServerDecl]])


def shared_tools_server(agent: str) -> McpServerDecl | None:
    """The shared tool server as the demo agent `agent` declares it, or None when unset."""
    settings = get_settings()
    names = SHARED_TOOLS.get(agent)
    if not settings.mcp_tools_url or names is None:
        return None
    return McpServerDecl(
        name="tools",
        url=settings.mcp_tools_url,
        headers={TOOLS_KEY_HEADER: TOOLS_SECRET} if settings.mcp_tools_token else {},
        allow=names,
        tools=dict.fromkeys(names, "read"),
    )


def declared_servers(agent: str, own: tuple[McpServerDecl, ...] = ()) -> list[McpServerDecl]:
    """Every MCP server the catalog agent `agent` uses: the shared tool server, those its
    declaration lists (`own`), then ASCENT_MCP_SERVERS' (ValueError when that is invalid)."""
    found = [d for d in (shared_tools_server(agent),) if d is not None]
    found.extend(own)
    raw = get_settings().mcp_servers.strip()
    if raw:
        try:
            extra = _DECLARED.validate_python(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"ASCENT_MCP_SERVERS is not valid: {exc}") from None
        found.extend(extra.get(agent, []))
    return found


def with_mcp_servers(
    agent: Agent[Any], name: str, own: tuple[McpServerDecl, ...] = ()
) -> Agent[Any]:
    """The catalog agent with the MCP servers it declares; the shared tool server's tools
    replace the in-process copies of the same name."""
    declared = declared_servers(name, own)
    if not declared:
        return agent
    served = set(SHARED_TOOLS.get(name, ())) if shared_tools_server(name) is not None else set()
    agent.tools = [t for t in agent.tools if not (isinstance(t, FunctionTool) and t.name in served)]
    agent.mcp_servers = [DeclaredServer(d) for d in declared]
    return agent


# --- connections --------------------------------------------------------------------------------


class _Client:
    """A connected SDK client of one server, and when its tool list was last fetched."""

    def __init__(self, server: MCPServerStreamableHttp) -> None:
        self.server = server
        self.listed_at = time.monotonic()


class Connections:
    """Connected clients by server, opened on first use (a run's, or a process's pool)."""

    def __init__(self, bound: int) -> None:
        """Keep at most `bound` clients open."""
        self._bound = bound
        # Keyed by the whole declaration: a changed declaration is a different client.
        self._open: OrderedDict[str, _Client] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def client(self, decl: McpServerDecl, *, ttl: float | None) -> MCPServerStreamableHttp:
        """The server's connected client; its tool list re-fetched when older than `ttl`."""
        key = decl.model_dump_json()
        found = self._open.get(key)
        if found is None:
            async with self._locks.setdefault(key, asyncio.Lock()):
                found = self._open.get(key)
                if found is None:
                    # Connected in a fresh context: a pooled client's transport task outlives
                    # this run and must not carry its context (trace spans, run scope).
                    connecting = asyncio.create_task(_connect(decl), context=Context())
                    found = _Client(await connecting)
                    self._open[key] = found
                    await self._shrink()
        self._open.move_to_end(key)
        if ttl is not None and time.monotonic() - found.listed_at > ttl:
            found.server.invalidate_tools_cache()  # type: ignore[no-untyped-call]
            found.listed_at = time.monotonic()
        return found.server

    async def drop(self, decl: McpServerDecl) -> None:
        """Close the server's client (after a failure: the next use connects afresh)."""
        found = self._open.pop(decl.model_dump_json(), None)
        if found is not None:
            await _close(found.server)

    async def _shrink(self) -> None:
        while len(self._open) > self._bound:
            key, oldest = self._open.popitem(last=False)
            self._locks.pop(key, None)
            await _close(oldest.server)

    async def close(self) -> None:
        """Close every client."""
        while self._open:
            _, found = self._open.popitem()
            await _close(found.server)


async def _connect(decl: McpServerDecl) -> MCPServerStreamableHttp:
    server = MCPServerStreamableHttp(
        {
            "url": decl.url,
            "headers": decl.header_values(),
            "timeout": decl.timeout_seconds,
            "sse_read_timeout": decl.timeout_seconds,
        },
        # The SDK's cache; Connections re-fetches it after the TTL.
        cache_tools_list=True,
        name=decl.name,
        client_session_timeout_seconds=decl.timeout_seconds,
        tool_filter=(
            {"allowed_tool_names": list(decl.allow), "blocked_tool_names": list(decl.deny)}
            if decl.allow is not None
            else {"blocked_tool_names": list(decl.deny)}
        ),
        # Never retried here: a write must not run twice because its answer was lost.
        max_retry_attempts=0,
    )
    try:
        await _within(decl, "did not accept a connection", server.connect())  # type: ignore[no-untyped-call]
    except BaseException:
        await _close(server)
        raise
    return server


async def _close(server: MCPServerStreamableHttp) -> None:
    # Closing a dead connection may itself fail or hang; the run's outcome does not wait on it.
    with suppress(Exception, TimeoutError):
        async with asyncio.timeout(5):
            await server.cleanup()  # type: ignore[no-untyped-call]


_RUN_SCOPE: ContextVar[Connections | None] = ContextVar("mcp_run_scope", default=None)
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connections] = (
    weakref.WeakKeyDictionary()
)


def _connections() -> tuple[Connections, float | None]:
    """The clients this use draws from, and their tool-list TTL (None: a run's own)."""
    scoped = _RUN_SCOPE.get()
    if scoped is not None:
        return scoped, None
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = Connections(POOL_BOUND)
    return pool, get_settings().mcp_tools_ttl_seconds


@asynccontextmanager
async def mcp_scope() -> AsyncIterator[None]:
    """Wrap one run: with `per_run` connections, its clients open inside and close at the end."""
    if get_settings().mcp_connections == "pooled":
        yield
        return
    scoped = Connections(POOL_BOUND)
    token = _RUN_SCOPE.set(scoped)
    try:
        yield
    finally:
        _RUN_SCOPE.reset(token)
        await scoped.close()


async def close_pool() -> None:
    """Close this event loop's pooled clients (shutdown, tests)."""
    found = _POOLS.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()


# --- the server an agent holds ----------------------------------------------------------------


async def _within(decl: McpServerDecl, slow: str, work: Awaitable[T]) -> T:
    """Await `work` within the declaration's timeout, any failure as McpServerFailed."""
    try:
        async with asyncio.timeout(decl.timeout_seconds):
            return await work
    except TimeoutError:
        raise McpServerFailed(decl.name, f"{slow} within {decl.timeout_seconds:g}s") from None
    except McpServerFailed:
        raise
    except Exception as exc:
        raise McpServerFailed(decl.name, f"failed: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """A failure's short, credential-free description (the SDK's messages omit URLs)."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result_text(result: CallToolResult) -> str:
    parts = [getattr(c, "text", "") for c in result.content]
    return " ".join(p for p in parts if p) or "no details"


def _call_meta(ctx: MCPToolMetaContext) -> dict[str, Any] | None:
    """The idempotency key of a tool call: its run, tool and arguments. Not the model's call
    id: a run retried from its start (its executor died) gets new call ids from a real model,
    and must still not repeat a write that already ran."""
    run_id = getattr(ctx.run_context.context, "run_id", None)
    if not isinstance(run_id, str):
        return None
    arguments = json.dumps(ctx.arguments or {}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{ctx.tool_name}\0{arguments}".encode()).hexdigest()[:32]
    return {IDEMPOTENCY_KEY: f"{run_id}/{ctx.tool_name}/{digest}"}


class DeclaredServer(MCPServer):
    """The MCP server an agent declares: holds no connection, finds one on each use."""

    def __init__(self, decl: McpServerDecl) -> None:
        """Gate the declaration's write/spend tools; raise every failure out of the run."""
        super().__init__(
            require_approval=self._needs_approval,
            # None: a failed call ends the run with a clear error instead of the model reading it.
            failure_error_function=None,
            tool_meta_resolver=_call_meta,
        )
        self.decl = decl

    @property
    def name(self) -> str:
        """The declared name (never the URL: it may carry credentials)."""
        return self.decl.name

    async def connect(self) -> None:
        """Nothing to do: a connection is found (or opened) on each use."""

    async def cleanup(self) -> None:
        """Nothing to do: connections belong to the run's scope or the process's pool."""

    async def _needs_approval(
        self, ctx: RunContextWrapper[Any], agent: AgentBase, tool: MCPTool
    ) -> bool:
        return await requires_approval(ctx.context, tool.name, self.decl.class_of(tool.name))

    async def _use(self, slow: str, work: Any) -> Any:
        """Run `work(client)` on this server's client; a failure drops the client."""
        connections, ttl = _connections()
        client = await connections.client(self.decl, ttl=ttl)
        try:
            return await _within(self.decl, slow, work(client))
        except McpServerFailed:
            await connections.drop(self.decl)
            raise

    async def list_tools(
        self, run_context: RunContextWrapper[Any] | None = None, agent: AgentBase | None = None
    ) -> list[MCPTool]:
        """The server's tools, filtered by the declaration's allow and deny lists."""
        found: list[MCPTool] = await self._use(
            "did not list its tools", lambda c: c.list_tools(run_context, agent)
        )
        return found

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> CallToolResult:
        """Call a tool; an error result fails the run like an unreachable server."""
        result: CallToolResult = await self._use(
            f"did not answer {tool_name!r}",
            lambda c: c.call_tool(tool_name, arguments, meta=meta),
        )
        if result.is_error:
            raise McpServerFailed(
                self.decl.name, f"tool {tool_name!r} failed: {_result_text(result)}"
            )
        return result

    async def list_prompts(self) -> ListPromptsResult:
        """Prompts are not used by agents here."""
        return ListPromptsResult(prompts=[])

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        """Prompts are not used by agents here."""
        raise McpServerFailed(self.decl.name, f"has no prompt {name!r} for agents")
