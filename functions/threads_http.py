"""`GET /api/threads/{thread_id}/messages`: a thread's conversation history."""

from __future__ import annotations

import uuid

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api, principal_of
from shared.api.openapi import documented
from shared.api.protocol import thread_items
from shared.api.schemas import ThreadMessages
from shared.core.errors import NotFound

bp = func.Blueprint()


@bp.route(
    route="threads/{thread_id}/messages", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
@documented(
    summary="A thread's history",
    response=ThreadMessages,
    errors=[404],
    tags=["threads"],
)
@api
async def get_thread_messages(req: Request) -> Response:
    """Return the thread's messages, tool calls and tool outputs, oldest first."""
    principal = await principal_of(req)
    thread_id = req.path_params["thread_id"]
    try:
        uuid.UUID(thread_id)
    except ValueError:
        raise NotFound(f"No thread {thread_id!r}.") from None
    items = await thread_items(principal, thread_id)
    body = ThreadMessages(thread_id=thread_id, items=[dict(i) for i in items])
    return JSONResponse(body.model_dump())
