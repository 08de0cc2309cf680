"""LangGraph assistants under `/api/assistants`: create, read, version, search, and describe
an agent configuration. Logic in shared/api/assistants.py; `/agents` stays Agent Protocol's."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api import assistants
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
TAGS = ["assistants"]
_OBJECT = {"type": "object"}
_ID = {"assistant_id": {"type": "string", "description": "An assistant id or a graph name."}}


def _id(req: Request) -> str:
    return str(req.path_params["assistant_id"])


@bp.route(route="assistants", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create an assistant",
    request=assistants.AssistantCreate,
    response=assistants.AssistantOut,
    errors=[409],
    tags=TAGS,
)
@api
async def create_assistant(req: Request) -> Response:
    """Create an assistant configuring a catalog agent (version 1)."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.AssistantCreate)
    return JSONResponse(await assistants.create(principal, body))


@bp.route(route="assistants/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search assistants",
    request=assistants.AssistantSearch,
    response=assistants.AssistantSearchResult,
    response_headers={"X-Pagination-Next": "The offset of the next page, when there is one."},
    tags=TAGS,
)
@api
async def search_assistants(req: Request) -> Response:
    """List the assistants (catalog defaults and the tenant's own) matching the filters."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.AssistantSearch)
    page, following = await assistants.search(principal, body)
    headers = {"X-Pagination-Next": str(following)} if following is not None else None
    return JSONResponse(page, headers=headers)


@bp.route(route="assistants/count", methods=["POST"], auth_level=ANON)
@documented(
    summary="Count assistants",
    request=assistants.AssistantCount,
    response={"type": "integer"},
    tags=TAGS,
)
@api
async def count_assistants(req: Request) -> Response:
    """Count the assistants matching the filters."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.AssistantCount)
    return JSONResponse(await assistants.count(principal, body))


@bp.route(route="assistants/{assistant_id}", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get an assistant",
    response=assistants.AssistantOut,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def get_assistant(req: Request) -> Response:
    """Get an assistant's latest version."""
    principal = await principal_of(req)
    return JSONResponse(await assistants.get(principal, _id(req)))


@bp.route(route="assistants/{assistant_id}", methods=["PATCH"], auth_level=ANON)
@documented(
    summary="Update an assistant (a new version)",
    request=assistants.AssistantPatch,
    response=assistants.AssistantOut,
    errors=[404, 409],
    path_params=_ID,
    tags=TAGS,
)
@api
async def update_assistant(req: Request) -> Response:
    """Write a new version of the assistant; it becomes the latest."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.AssistantPatch)
    return JSONResponse(await assistants.update(principal, _id(req), body))


@bp.route(route="assistants/{assistant_id}", methods=["DELETE"], auth_level=ANON)
@documented(
    summary="Delete an assistant", status=204, errors=[404, 409], path_params=_ID, tags=TAGS
)
@api
async def delete_assistant(req: Request) -> Response:
    """Delete an assistant and its versions (its audit trail stays). LangGraph's
    `delete_threads` is not supported: threads are kept."""
    principal = await principal_of(req)
    await assistants.delete_assistant(principal, _id(req))
    return Response(status_code=204)


@bp.route(route="assistants/{assistant_id}/graph", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get an assistant's graph",
    response=assistants.GraphOut,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def get_assistant_graph(req: Request) -> Response:
    """The assistant's agent, its tools and its handoffs as nodes and edges."""
    principal = await principal_of(req)
    return JSONResponse(await assistants.graph(principal, _id(req)))


@bp.route(route="assistants/{assistant_id}/subgraphs", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get an assistant's subgraphs",
    response=_OBJECT,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def get_assistant_subgraphs(req: Request) -> Response:
    """The assistant's subgraphs (none: handoffs are nodes of its graph)."""
    principal = await principal_of(req)
    return JSONResponse(await assistants.subgraphs(principal, _id(req)))


@bp.route(route="assistants/{assistant_id}/schemas", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get an assistant's JSON Schemas",
    response=assistants.SchemasOut,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def get_assistant_schemas(req: Request) -> Response:
    """The input, output, state, config and context JSON Schemas of the assistant's graph."""
    principal = await principal_of(req)
    return JSONResponse(await assistants.schemas(principal, _id(req)))


@bp.route(route="assistants/{assistant_id}/versions", methods=["POST"], auth_level=ANON)
@documented(
    summary="List an assistant's versions",
    request=assistants.VersionSearch,
    response=assistants.AssistantVersionList,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def list_assistant_versions(req: Request) -> Response:
    """The assistant's versions matching the metadata, newest first."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.VersionSearch)
    return JSONResponse(await assistants.versions(principal, _id(req), body))


@bp.route(route="assistants/{assistant_id}/latest", methods=["POST"], auth_level=ANON)
@documented(
    summary="Set an assistant's latest version",
    request=assistants.SetLatest,
    response=assistants.AssistantOut,
    errors=[404, 409],
    path_params=_ID,
    tags=TAGS,
)
@api
async def set_assistant_latest(req: Request) -> Response:
    """Make one of the assistant's versions the one runs use."""
    principal = await principal_of(req)
    body = await read_json(req, assistants.SetLatest)
    return JSONResponse(await assistants.set_latest(principal, _id(req), body))


@bp.route(route="assistants/{assistant_id}/audit", methods=["GET"], auth_level=ANON)
@documented(
    summary="An assistant's audit trail",
    response=assistants.AuditTrail,
    errors=[404],
    path_params=_ID,
    tags=TAGS,
)
@api
async def get_assistant_audit(req: Request) -> Response:
    """Who created, updated, re-pointed or deleted the assistant, and when; oldest first."""
    principal = await principal_of(req)
    return JSONResponse(await assistants.audit(principal, _id(req)))
