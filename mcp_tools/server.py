"""The tool server's MCP app: three read-only tools, the same code the in-process tools run."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Final

from mcp.server.mcpserver import MCPServer
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from examples.assistant import EXPRESSION_PATTERN, TIMEZONE_PATTERN, calculation, time_in
from examples.tech_support import explain_error
from shared.agents.mcp_servers import TOOLS_KEY_HEADER
from shared.core.settings import get_settings

NAME: Final = "ascent-tools"
MCP_PATH: Final = "/mcp"
DEFAULT_PORT: Final = 8080

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_server() -> MCPServer:
    """The MCP server with the calculator, the clock and the error lookup."""
    server: MCPServer = MCPServer(NAME, instructions="Ascent's shared demo tools.")

    @server.tool()
    def calculate(
        expression: Annotated[str, Field(pattern=EXPRESSION_PATTERN, max_length=200)],
    ) -> str:
        """Calculate the value of an arithmetic expression such as 12 * (3 + 4)."""
        return calculation(expression)

    @server.tool()
    def current_time(timezone: Annotated[str, Field(pattern=TIMEZONE_PATTERN)]) -> str:
        """Tell the current time in an IANA time zone such as Europe/Paris."""
        return time_in(timezone)

    @server.tool()
    def lookup_error(code: Annotated[str, Field(pattern=r"E\d{3}")]) -> str:
        """Look up what an error code means and how to fix it."""
        return explain_error(code)

    @server.custom_route("/health", methods=["GET"])  # type: ignore[untyped-decorator]
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return server


def require_key(app: Asgi, key: str) -> Asgi:
    """Refuse MCP requests without the tool server's key (the health probe stays open)."""
    expected = key.encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(MCP_PATH):
            given = dict(scope.get("headers") or []).get(TOOLS_KEY_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, expected):
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def build_app() -> Asgi:
    """The ASGI app: stateless streamable HTTP at /mcp, JSON responses, `/health`."""
    app: Asgi = build_server().streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True
    )
    token = get_settings().mcp_tools_token
    return require_key(app, token.get_secret_value()) if token is not None else app
