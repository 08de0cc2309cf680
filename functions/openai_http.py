"""The OpenAI-compatible API under `/api/v1`: models and chat completions.

The behaviour (threads, streaming, client tools) is documented in `shared.api.openai_compat`;
errors are OpenAI's shape (`shared.api.openai_errors`). The Responses API is
functions/responses_http.py.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response
from openai.types import Model
from openai.types.chat import ChatCompletion

from shared.api.http import principal_of, read_json
from shared.api.openai_compat import (
    CHAT_COMPLETION_CHUNK,
    RUN_HEADER,
    THREAD_HEADER,
    ChatCompletionRequest,
    ModelList,
    chat_completions,
    get_model_card,
    list_models,
)
from shared.api.openai_errors import openai_api
from shared.api.openapi import documented

bp = func.Blueprint()

_ANSWER_HEADERS = {
    THREAD_HEADER: "The thread the run was recorded on (continue it with the same header).",
    RUN_HEADER: "The run's id.",
}


@bp.route(route="v1/models", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="List the agents as OpenAI models",
    response=ModelList,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_list_models(req: Request) -> Response:
    """List every catalog agent and the tenant's assistants as OpenAI models."""
    principal = await principal_of(req)
    return JSONResponse((await list_models(principal.tenant_id)).model_dump(mode="json"))


@bp.route(route="v1/models/{model}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="One agent as an OpenAI model",
    response=Model,
    errors=[404],
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_get_model(req: Request) -> Response:
    """Return the catalog agent or assistant named in the path as an OpenAI model."""
    principal = await principal_of(req)
    card = await get_model_card(principal.tenant_id, req.path_params["model"])
    return JSONResponse(card.model_dump(mode="json"))


@bp.route(route="v1/chat/completions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="Run an agent as an OpenAI chat completion (JSON, or SSE with `stream`)",
    description=(
        "`model` is a catalog agent. `X-Ascent-Thread-Id` or `user` selects a server-side "
        "thread (then only the last user message is new input); without either the run is "
        "stateless and takes all of `messages`. With `stream: true` the answer is "
        "`text/event-stream` of `data: {chat.completion.chunk}` lines ending `data: [DONE]`. "
        "Client-supplied function `tools` come back as `tool_calls` (finish_reason "
        "`tool_calls`); continue with `role: tool` messages."
    ),
    request=ChatCompletionRequest,
    response=ChatCompletion,
    streaming=True,
    events={"*": CHAT_COMPLETION_CHUNK},
    errors=[404, 409, 502, 503],
    headers={THREAD_HEADER: "Continue this thread of the caller's tenant (a UUID)."},
    response_headers=_ANSWER_HEADERS,
    tags=["openai"],
    openai_errors=True,
)
@openai_api
async def openai_chat_completions(req: Request) -> Response:
    """Run the agent named by `model` on the conversation and answer in OpenAI's shape."""
    principal = await principal_of(req)
    body = await read_json(req, ChatCompletionRequest)
    return await chat_completions(
        principal=principal, body=body, thread_header=req.headers.get(THREAD_HEADER)
    )
