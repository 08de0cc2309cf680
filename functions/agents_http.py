"""`GET /api/agents` and `POST /api/agents/{agent}/runs`: list the catalog and run an agent."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.agents import catalog
from shared.api import simple
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.schemas import AgentInfo, AgentList, AgentRunRequest, AgentRunResponse

bp = func.Blueprint()


@bp.route(route="agents", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(summary="List the agents", response=AgentList, tags=["agents"])
@api
async def list_agents(req: Request) -> Response:
    """List the agents this deployment serves."""
    await principal_of(req)
    agents = [
        AgentInfo(name=s.name, description=s.description).model_dump() for s in catalog().values()
    ]
    return JSONResponse({"agents": agents})


@bp.route(route="agents/{agent}/runs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="Run an agent and wait for its answer",
    request=AgentRunRequest,
    response=AgentRunResponse,
    errors=[404, 409, 422, 429, 502, 503],
    tags=["agents"],
)
@api
async def create_agent_run(req: Request) -> Response:
    """Run an agent on the input, in a new thread or the given one, and return its answer."""
    principal = await principal_of(req)
    body = await read_json(req, AgentRunRequest)
    answer = await simple.run_agent(principal, req.path_params["agent"], body)
    return JSONResponse(answer.model_dump(mode="json"))
