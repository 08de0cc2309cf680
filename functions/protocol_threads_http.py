"""Agent Protocol threads: create, search, count, prune, get, patch, delete, state, history and
copy; and the
grants that share a user's thread with other users of the tenant
(shared/security/thread_access.py)."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api import protocol, thread_state
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.protocol_http import query_int
from shared.security import thread_access

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": {}}
_GRANTEE = {
    "user_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": thread_access.MAX_USER_ID_CHARS,
        "pattern": r"^\S(.*\S)?$",
        "description": "The user's id as their tokens carry it (`oid`, else `sub`).",
    }
}
_GRANTS_DOC = (
    "Only the thread's owner or a tenant-wide principal (an API key, or a user with the "
    "tenant admin role) manages grants: another user who sees the thread through a grant gets "
    "403, and one who does not see it 404, as for a missing thread."
)


@bp.route(route="threads", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a thread",
    request=protocol.ThreadCreate,
    response=_OBJECT,
    errors=[409],
    tags=["agent-protocol"],
)
@api
async def protocol_create_thread(req: Request) -> Response:
    """Create a thread."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.ThreadCreate)
    return JSONResponse(await protocol.create_thread(principal, body))


@bp.route(route="threads/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search threads",
    request=protocol.ThreadSearch,
    response=_ARRAY,
    tags=["agent-protocol"],
)
@api
async def protocol_search_threads(req: Request) -> Response:
    """Search the tenant's threads by metadata, values and status."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.ThreadSearch)
    return JSONResponse(await protocol.search_threads(principal, body))


@bp.route(route="threads/count", methods=["POST"], auth_level=ANON)
@documented(
    summary="Count threads",
    request=protocol.ThreadCount,
    response={"type": "integer", "minimum": 0},
    tags=["agent-protocol"],
)
@api
async def protocol_count_threads(req: Request) -> Response:
    """How many of the tenant's threads match the metadata, values and status filters."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.ThreadCount)
    return JSONResponse(await protocol.count_threads(principal, body))


@bp.route(route="threads/prune", methods=["POST"], auth_level=ANON)
@documented(
    summary="Prune threads",
    request=protocol.ThreadPrune,
    response=_OBJECT,
    tags=["agent-protocol"],
)
@api
async def protocol_prune_threads(req: Request) -> Response:
    """Delete threads by id (`delete`), or keep only their newest written checkpoint."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.ThreadPrune)
    return JSONResponse(await protocol.prune_threads(principal, body))


@bp.route(route="threads/{thread_id}/state", methods=["GET"], auth_level=ANON)
@documented(
    summary="A thread's current state",
    description="LangGraph `ThreadState`: values (messages), next, tasks with interrupts while a "
    "run is paused for review, and the checkpoint that history and copy agree with.",
    response=_OBJECT,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_get_thread_state(req: Request) -> Response:
    """The thread's newest state."""
    principal = await principal_of(req)
    return JSONResponse(await thread_state.get_state(principal, req.path_params["thread_id"]))


@bp.route(route="threads/{thread_id}/state", methods=["POST"], auth_level=ANON)
@documented(
    summary="Update a thread's state",
    description="`values.messages` are appended to the conversation, other keys merged into "
    "the thread's values, as a new checkpoint. 409 while a run holds or pauses the thread; "
    "422 for a checkpoint other than the current one.",
    request=thread_state.StateUpdate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_update_thread_state(req: Request) -> Response:
    """Write a new state on top of the thread's current one."""
    principal = await principal_of(req)
    body = await read_json(req, thread_state.StateUpdate)
    update = await thread_state.update_state(principal, req.path_params["thread_id"], body)
    return JSONResponse(update)


@bp.route(route="threads/{thread_id}/state/checkpoint", methods=["POST"], auth_level=ANON)
@documented(
    summary="A thread's state at a checkpoint",
    request=thread_state.StateAt,
    response=_OBJECT,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_state_at(req: Request) -> Response:
    """The thread's state at the given checkpoint."""
    principal = await principal_of(req)
    body = await read_json(req, thread_state.StateAt)
    state = await thread_state.get_state(
        principal,
        req.path_params["thread_id"],
        checkpoint_id=body.checkpoint.checkpoint_id,
    )
    return JSONResponse(state)


@bp.route(route="threads/{thread_id}/state/{checkpoint_id}", methods=["GET"], auth_level=ANON)
@documented(
    summary="A thread's state at a checkpoint id",
    response=_OBJECT,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_state_by_id(req: Request) -> Response:
    """The thread's state at the checkpoint with this id."""
    principal = await principal_of(req)
    state = await thread_state.get_state(
        principal, req.path_params["thread_id"], checkpoint_id=req.path_params["checkpoint_id"]
    )
    return JSONResponse(state)


@bp.route(route="threads/{thread_id}", methods=["GET"], auth_level=ANON)
@documented(summary="Get a thread", response=_OBJECT, errors=[404], tags=["agent-protocol"])
@api
async def protocol_get_thread(req: Request) -> Response:
    """Get a thread with its current messages."""
    principal = await principal_of(req)
    return JSONResponse(await protocol.get_thread(principal, req.path_params["thread_id"]))


@bp.route(route="threads/{thread_id}", methods=["PATCH"], auth_level=ANON)
@documented(
    summary="Update a thread",
    request=protocol.ThreadPatch,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_patch_thread(req: Request) -> Response:
    """Merge metadata and values into a thread, or append messages to it."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.ThreadPatch)
    thread = await protocol.patch_thread(principal, req.path_params["thread_id"], body)
    return JSONResponse(thread)


@bp.route(route="threads/{thread_id}", methods=["DELETE"], auth_level=ANON)
@documented(summary="Delete a thread", status=204, errors=[404, 409], tags=["agent-protocol"])
@api
async def protocol_delete_thread(req: Request) -> Response:
    """Delete a thread, its runs and its conversation."""
    principal = await principal_of(req)
    await protocol.delete_thread(principal, req.path_params["thread_id"])
    return Response(status_code=204)


@bp.route(route="threads/{thread_id}/history", methods=["GET", "POST"], auth_level=ANON)
@documented(
    summary="A thread's past states",
    request=protocol.Page,
    response=_ARRAY,
    errors=[404, 422],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_history(req: Request) -> Response:
    """A thread's past states, newest first (POST is the LangGraph client's form)."""
    principal = await principal_of(req)
    limit = query_int(req, "limit", 10, low=1, high=protocol.MAX_PAGE)
    if req.method == "POST":
        body = await read_json(req, protocol.Page)
        limit = body.limit
    states = await thread_state.history(principal, req.path_params["thread_id"], limit=limit)
    return JSONResponse(states)


@bp.route(route="threads/{thread_id}/copy", methods=["POST"], auth_level=ANON)
@documented(summary="Copy a thread", response=_OBJECT, errors=[404], tags=["agent-protocol"])
@api
async def protocol_copy_thread(req: Request) -> Response:
    """Copy a thread's metadata, values and conversation into a new thread."""
    principal = await principal_of(req)
    return JSONResponse(await thread_state.copy(principal, req.path_params["thread_id"]))


@bp.route(route="threads/{thread_id}/grants", methods=["GET"], auth_level=ANON)
@documented(
    summary="List the users a thread is granted to",
    description=_GRANTS_DOC,
    response=thread_access.GrantList,
    errors=[403, 404],
    tags=["threads"],
)
@api
async def protocol_list_thread_grants(req: Request) -> Response:
    """List the thread's owner and the users it is granted to, oldest grant first."""
    principal = await principal_of(req)
    thread_id = protocol.parse_id(req.path_params["thread_id"], "thread")
    grants = await thread_access.list_grants(principal, thread_id)
    return JSONResponse(grants.model_dump(mode="json"))


@bp.route(route="threads/{thread_id}/grants/{user_id}", methods=["PUT"], auth_level=ANON)
@documented(
    summary="Grant a user of the tenant access to a thread (idempotent)",
    description=_GRANTS_DOC + " The grantee may read, run, patch, copy and delete the thread.",
    response=thread_access.GrantOut,
    errors=[403, 404, 422],
    path_params=_GRANTEE,
    tags=["threads"],
)
@api
async def protocol_put_thread_grant(req: Request) -> Response:
    """Grant the user access to the thread; granting again returns the existing grant."""
    principal = await principal_of(req)
    thread_id = protocol.parse_id(req.path_params["thread_id"], "thread")
    granted = await thread_access.grant(principal, thread_id, req.path_params["user_id"])
    return JSONResponse(granted.model_dump(mode="json"))


@bp.route(route="threads/{thread_id}/grants/{user_id}", methods=["DELETE"], auth_level=ANON)
@documented(
    summary="Revoke a user's access to a thread (idempotent)",
    description=_GRANTS_DOC,
    status=204,
    errors=[403, 404, 422],
    path_params=_GRANTEE,
    tags=["threads"],
)
@api
async def protocol_delete_thread_grant(req: Request) -> Response:
    """Revoke the user's grant; the thread is hidden from them again (unless they own it)."""
    principal = await principal_of(req)
    thread_id = protocol.parse_id(req.path_params["thread_id"], "thread")
    await thread_access.revoke(principal, thread_id, req.path_params["user_id"])
    return Response(status_code=204)
