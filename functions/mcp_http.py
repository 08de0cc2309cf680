"""`/api/mcp`: Ascent as an MCP server (streamable HTTP, stateless); shared/api/mcp_server.py."""

from __future__ import annotations

from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from shared.api.http import api, principal_of, read_body, unstorable_jsonrpc
from shared.api.openapi import documented

bp = func.Blueprint()

# A JSON-RPC 2.0 message as MCP sends it (the SDK validates it; these are the documented shapes).
_JSONRPC_ID: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
JSONRPC_MESSAGE: dict[str, Any] = {
    "title": "JsonRpcMessage",
    "description": (
        "One JSON-RPC 2.0 message of the Model Context Protocol: a request (`id` and "
        "`method`, e.g. `tools/list`, `tools/call`), or a notification (`method`, no `id`)."
    ),
    "type": "object",
    "required": ["jsonrpc", "method"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": _JSONRPC_ID,
        "method": {"type": "string"},
        "params": {"type": "object"},
    },
    "example": {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
}
JSONRPC_ANSWER: dict[str, Any] = {
    "title": "JsonRpcAnswer",
    "description": "The JSON-RPC 2.0 response: `result`, or `error` (`code`, `message`).",
    "type": "object",
    "required": ["jsonrpc"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"anyOf": [*_JSONRPC_ID["anyOf"], {"type": "null"}]},
        "result": {"type": "object"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
    },
}
_REFUSED = "The MCP transport refused the message (a JSON-RPC error, no `id`)."


@bp.route(route="mcp", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="MCP server (streamable HTTP, stateless)",
    description=(
        "Model Context Protocol over streamable HTTP in stateless mode: POST one JSON-RPC "
        "message, get its JSON-RPC answer as JSON (202 and no body for a notification). The "
        "tools run the agents and assistants, and reach the caller's memories and the reviews "
        "they may decide, as the caller. Send `Accept: application/json, text/event-stream`. "
        "Stateless: there is no session, so GET (a server stream) and DELETE (end a session) "
        "are not served (405, like any method a route does not serve)."
    ),
    request=JSONRPC_MESSAGE,
    response=JSONRPC_ANSWER,
    responses={
        202: ("A notification (or a response) was accepted; no body.", None),
        400: (_REFUSED + " Not a JSON-RPC message.", JSONRPC_ANSWER),
        406: (_REFUSED + " The client does not accept JSON.", JSONRPC_ANSWER),
        415: (_REFUSED + " The body is not `application/json`.", JSONRPC_ANSWER),
    },
    tags=["mcp"],
)
@api
async def mcp(req: Request) -> Response:
    """Authenticate, then let the MCP SDK answer the request as the caller."""
    principal = await principal_of(req)
    body = await read_body(req)
    refused = unstorable_jsonrpc(body)
    if refused is not None:
        return refused
    # Function-local for cold start: the tool server (its module, and the tools' schemas built
    # from it) loads on the first MCP request, not when the host imports function_app.py.
    from shared.api import mcp_server

    return await mcp_server.handle(req, principal, body)
