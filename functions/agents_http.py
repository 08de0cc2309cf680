"""`GET /api/agents` and `POST /api/agents/{agent}/runs`: list the catalog and run an agent."""

from __future__ import annotations

from dataclasses import asdict

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.agents import CATALOG
from shared.http import api, principal_of, read_json
from shared.openapi import documented
from shared.ratelimit import check_token_budget, run_slot
from shared.runs import run_agent
from shared.schemas import AgentInfo, AgentList, AgentRunRequest, AgentRunResponse

bp = func.Blueprint()


@bp.route(route="agents", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(summary="List the agents", response=AgentList, tags=["agents"])
@api
async def list_agents(req: Request) -> Response:
    """List the agents this deployment serves."""
    await principal_of(req)
    agents = [
        AgentInfo(name=s.name, description=s.description).model_dump() for s in CATALOG.values()
    ]
    return JSONResponse({"agents": agents})


@bp.route(route="agents/{agent}/runs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="Run an agent and wait for its answer",
    request=AgentRunRequest,
    response=AgentRunResponse,
    errors=[404, 429, 502],
    tags=["agents"],
)
@api
async def create_agent_run(req: Request) -> Response:
    """Run an agent on the input, in a new thread or the given one, and return its answer."""
    principal = await principal_of(req)
    body = await read_json(req, AgentRunRequest)
    await check_token_budget(principal.tenant_id)
    async with run_slot(principal):
        outcome = await run_agent(
            principal=principal,
            agent_name=req.path_params["agent"],
            input_text=body.input,
            thread_id=str(body.thread_id) if body.thread_id else None,
        )
    return JSONResponse(asdict(outcome))
