"""The OpenAI Responses API under `/api/v1/responses` (behaviour: shared/api/responses.py)."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses.response_item_list import ResponseItemList
from pydantic import ValidationError

from shared.api import responses
from shared.api.http import principal_of, read_json
from shared.api.openai_errors import openai_api
from shared.api.openapi import documented
from shared.core.errors import ValidationFailed

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_ID = {"response_id": {"type": "string", "pattern": "^resp_[0-9a-f]{32}$"}}


def _dump(model: OpenAIResponse | ResponseItemList | responses.ResponseDeleted) -> Response:
    return JSONResponse(model.model_dump(mode="json"))


@bp.route(route="v1/responses", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a response: run an agent (JSON, SSE with `stream`, queued with `background`)",
    description=(
        "`model` is a catalog agent. `previous_response_id` or `conversation` (a thread id) "
        "continues a conversation. With `stream: true` the answer is `text/event-stream` of "
        "Responses events (`response.created` ... `response.completed`). A run paused for "
        "human approval completes with `mcp_approval_request` items (id `mcpr_<review hex>`); "
        "answer them with `mcp_approval_response` input items and `previous_response_id`."
    ),
    request=responses.ResponseCreate,
    response=OpenAIResponse,
    streaming=True,
    errors=[404, 409, 502, 503],
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_create_response(req: Request) -> Response:
    """Run the agent named by `model` and answer as an OpenAI Response."""
    principal = await principal_of(req)
    body = await read_json(req, responses.ResponseCreate)
    return await responses.create(principal, body)


@bp.route(route="v1/responses/{response_id}", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get a response",
    response=OpenAIResponse,
    errors=[404],
    path_params=_ID,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_get_response(req: Request) -> Response:
    """The response (its run) as it is now."""
    principal = await principal_of(req)
    return _dump(await responses.retrieve(principal, req.path_params["response_id"]))


@bp.route(route="v1/responses/{response_id}", methods=["DELETE"], auth_level=ANON)
@documented(
    summary="Delete a finished response",
    response=responses.ResponseDeleted,
    errors=[404, 409],
    path_params=_ID,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_delete_response(req: Request) -> Response:
    """Delete the response's run and its events (409 while it is queued or running)."""
    principal = await principal_of(req)
    return _dump(await responses.delete(principal, req.path_params["response_id"]))


@bp.route(route="v1/responses/{response_id}/cancel", methods=["POST"], auth_level=ANON)
@documented(
    summary="Cancel a queued, running or paused response",
    response=OpenAIResponse,
    errors=[404, 409],
    path_params=_ID,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_cancel_response(req: Request) -> Response:
    """Cancel the response's run and answer once it has stopped (status `cancelled`)."""
    principal = await principal_of(req)
    return _dump(await responses.cancel(principal, req.path_params["response_id"]))


@bp.route(route="v1/responses/{response_id}/input_items", methods=["GET"], auth_level=ANON)
@documented(
    summary="List a response's input items",
    query=responses.ItemsQuery,
    response=ResponseItemList,
    errors=[400, 404],
    path_params=_ID,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_response_input_items(req: Request) -> Response:
    """The input items the response was created with (newest first unless `order=asc`)."""
    principal = await principal_of(req)
    try:
        query = responses.ItemsQuery.model_validate(dict(req.query_params))
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ValidationFailed("The query has invalid parameters.", errors=errors) from None
    found = await responses.input_items(principal, req.path_params["response_id"], query)
    return _dump(found)
