"""Agent Protocol agents: `POST /api/agents/search`, `GET /api/agents/{agent_id}[/schemas]`."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api import protocol
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": {}}


@bp.route(route="agents/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search agents", request=protocol.AgentSearch, response=_ARRAY, tags=["agent-protocol"]
)
@api
async def protocol_search_agents(req: Request) -> Response:
    """List the agents matching a name and metadata."""
    await principal_of(req)
    body = await read_json(req, protocol.AgentSearch)
    return JSONResponse(protocol.search_agents(body))


@bp.route(route="agents/{agent_id}", methods=["GET"], auth_level=ANON)
@documented(summary="Get an agent", response=_OBJECT, errors=[404], tags=["agent-protocol"])
@api
async def protocol_get_agent(req: Request) -> Response:
    """Get an agent: name, description, metadata and capabilities."""
    await principal_of(req)
    return JSONResponse(protocol.get_agent_info(req.path_params["agent_id"]))


@bp.route(route="agents/{agent_id}/schemas", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get an agent's JSON Schemas", response=_OBJECT, errors=[404], tags=["agent-protocol"]
)
@api
async def protocol_get_agent_schemas(req: Request) -> Response:
    """Get an agent's input, output, state and config JSON Schemas."""
    await principal_of(req)
    return JSONResponse(protocol.agent_schemas(req.path_params["agent_id"]))
