"""User-defined scheduled runs (LangGraph crons): create, search and delete; fired by the
`dispatch_crons` job (shared/api/crons.py; firing: shared/runs/crons.py)."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api import crons, protocol
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": {"type": "object"}}
_CRON_DOC = (
    "The schedule is a 5-field cron expression in UTC. Each due occurrence creates one pending "
    "run (exactly once, even with several dispatcher replicas); missed occurrences fire the "
    "latest one once and skip the older ones."
)


@bp.route(route="runs/crons", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a cron (a scheduled stateless run)",
    description=_CRON_DOC + " Every run gets a new thread.",
    request=crons.CronCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["crons"],
)
@api
async def create_cron(req: Request) -> Response:
    """Schedule runs of an agent, each on a new thread (or on `thread_id` when given)."""
    principal = await principal_of(req)
    body = await read_json(req, crons.CronCreate)
    return JSONResponse(await crons.create_cron(principal, body))


@bp.route(route="threads/{thread_id}/runs/crons", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a cron on a thread",
    description=_CRON_DOC + " Every run joins the thread's conversation.",
    request=crons.CronCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["crons"],
)
@api
async def create_thread_cron(req: Request) -> Response:
    """Schedule runs of an agent on one of the tenant's threads."""
    principal = await principal_of(req)
    body = await read_json(req, crons.CronCreate)
    thread_id = protocol.parse_id(req.path_params["thread_id"], "thread")
    return JSONResponse(await crons.create_cron(principal, body, thread_id=thread_id))


@bp.route(route="runs/crons/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search crons",
    request=crons.CronSearch,
    response=_ARRAY,
    tags=["crons"],
)
@api
async def search_crons(req: Request) -> Response:
    """List the tenant's crons, filtered by agent, thread and metadata."""
    principal = await principal_of(req)
    body = await read_json(req, crons.CronSearch)
    return JSONResponse(await crons.search_crons(principal, body))


@bp.route(route="runs/crons/count", methods=["POST"], auth_level=ANON)
@documented(
    summary="Count crons",
    request=crons.CronCount,
    response={"type": "integer", "minimum": 0},
    tags=["crons"],
)
@api
async def count_crons(req: Request) -> Response:
    """How many of the tenant's crons match the agent, thread and metadata filters."""
    principal = await principal_of(req)
    body = await read_json(req, crons.CronCount)
    return JSONResponse(await crons.count_crons(principal, body))


@bp.route(route="runs/crons/{cron_id}", methods=["PATCH"], auth_level=ANON)
@documented(
    summary="Update a cron",
    request=crons.CronUpdate,
    response=_OBJECT,
    errors=[404],
    tags=["crons"],
)
@api
async def update_cron(req: Request) -> Response:
    """Change a cron's schedule, input, metadata, config, end or enabled state."""
    principal = await principal_of(req)
    body = await read_json(req, crons.CronUpdate)
    return JSONResponse(await crons.update_cron(principal, req.path_params["cron_id"], body))


@bp.route(route="runs/crons/{cron_id}", methods=["DELETE"], auth_level=ANON)
@documented(summary="Delete a cron", status=204, errors=[404], tags=["crons"])
@api
async def delete_cron(req: Request) -> Response:
    """Delete one of the tenant's crons (runs it already created are kept)."""
    principal = await principal_of(req)
    await crons.delete_cron(principal, req.path_params["cron_id"])
    return Response(status_code=204)
