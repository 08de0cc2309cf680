"""Agent Protocol runs (`/api/runs...`) and the LangGraph thread-scoped run paths
(`/api/threads/{thread_id}/runs...`): create, wait, stream, join, search, cancel, delete."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response
from pydantic import ValidationError

from shared.api import protocol, thread_stream
from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.protocol_http import (
    client_gone,
    query_bool,
    query_int,
    query_modes,
    run_paths,
    sse_response,
    thread_sse_response,
)
from shared.core.errors import ValidationFailed
from shared.db.views import run_json

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": {}}
_STOPPING = {202: ("The run is still stopping.", _OBJECT)}


def _thread_of(req: Request) -> str | None:
    thread_id = req.path_params.get("thread_id")
    return protocol.parse_id(thread_id, "thread") if thread_id else None


async def _create(req: Request) -> Response:
    principal = await principal_of(req)
    body = await read_json(req, protocol.RunCreate)
    run = await protocol.create_run(principal, body, thread_id=_thread_of(req))
    return JSONResponse(run_json(run), headers=run_paths(run))


async def _wait(req: Request) -> Response:
    principal = await principal_of(req)
    body = await read_json(req, protocol.RunCreate)
    started = await protocol.start_here(
        principal, body, thread_id=_thread_of(req), entry_point="wait"
    )
    cancel = body.on_disconnect == "cancel"
    answer = await protocol.wait_started(principal, started, gone=client_gone(req), cancel=cancel)
    headers = run_paths(started.run)
    headers["Location"] = headers["Content-Location"] + "/join"
    return JSONResponse(answer, headers=headers)


async def _stream(req: Request) -> Response:
    principal = await principal_of(req)
    body = await read_json(req, protocol.RunCreate)
    started = await protocol.start_here(
        principal, body, thread_id=_thread_of(req), entry_point="stream", default_modes=["values"]
    )
    events = protocol.stream_run(
        principal,
        started.run,
        after=started.after,
        cancel_on_disconnect=body.on_disconnect == "cancel",
    )
    return sse_response(started.run, events)


async def _join_stream(req: Request) -> Response:
    principal = await principal_of(req)
    run = await protocol.get_run(principal, req.path_params["run_id"], thread_id=_thread_of(req))
    header = req.headers.get("last-event-id") or req.query_params.get("last_event_id")
    after = protocol.parse_last_event_id(header)
    events = protocol.stream_run(
        principal,
        run,
        after=after,
        modes=query_modes(req),
        cancel_on_disconnect=query_bool(req, "cancel_on_disconnect"),
    )
    return sse_response(run, events)


async def _join(req: Request) -> Response:
    principal = await principal_of(req)
    run = await protocol.get_run(principal, req.path_params["run_id"], thread_id=_thread_of(req))
    done = await protocol.wait_run(principal, run.id)
    return JSONResponse(await protocol.wait_response(principal, done))


async def _get(req: Request) -> Response:
    principal = await principal_of(req)
    run = await protocol.get_run(principal, req.path_params["run_id"], thread_id=_thread_of(req))
    return JSONResponse(run_json(run))


async def _delete(req: Request) -> Response:
    principal = await principal_of(req)
    await protocol.delete_run(principal, req.path_params["run_id"], thread_id=_thread_of(req))
    return Response(status_code=204)


def _action(req: Request) -> str:
    action = str(req.query_params.get("action", "interrupt"))
    if action not in ("interrupt", "rollback"):
        raise ValidationFailed("action must be 'interrupt' or 'rollback'.")
    return action


async def _cancel(req: Request) -> Response:
    principal = await principal_of(req)
    if _action(req) == "rollback":
        await protocol.rollback_run(principal, req.path_params["run_id"], thread_id=_thread_of(req))
        return Response(status_code=204)
    run = await protocol.cancel_run(
        principal,
        req.path_params["run_id"],
        thread_id=_thread_of(req),
        wait=query_bool(req, "wait"),
    )
    return JSONResponse(run_json(run), status_code=202 if run.status == "running" else 200)


# --- Agent Protocol paths --------------------------------------------------------------------


@bp.route(route="runs", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a background run",
    request=protocol.RunCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_create_run(req: Request) -> Response:
    """Create a background run and return it at once (status pending)."""
    return await _create(req)


@bp.route(route="runs/wait", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a run and wait for its output",
    request=protocol.RunCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_create_run_wait(req: Request) -> Response:
    """Create a run and wait for its final output."""
    return await _wait(req)


@bp.route(route="runs/stream", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a run and stream it (SSE)",
    request=protocol.RunCreate,
    streaming=True,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_create_run_stream(req: Request) -> Response:
    """Create a run and stream its events (SSE)."""
    return await _stream(req)


@bp.route(route="runs/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search runs", request=protocol.RunSearch, response=_ARRAY, tags=["agent-protocol"]
)
@api
async def protocol_search_runs(req: Request) -> Response:
    """Search the tenant's runs by thread, agent, status and metadata."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.RunSearch)
    return JSONResponse(await protocol.search_runs(principal, body))


@bp.route(route="runs/{run_id}", methods=["GET"], auth_level=ANON)
@documented(summary="Get a run", response=_OBJECT, errors=[404], tags=["agent-protocol"])
@api
async def protocol_get_run(req: Request) -> Response:
    """Get a run and its status."""
    return await _get(req)


@bp.route(route="runs/{run_id}", methods=["DELETE"], auth_level=ANON)
@documented(summary="Delete a finished run", status=204, errors=[404, 409], tags=["agent-protocol"])
@api
async def protocol_delete_run(req: Request) -> Response:
    """Delete a finished run."""
    return await _delete(req)


@bp.route(route="runs/{run_id}/wait", methods=["GET"], auth_level=ANON)
@documented(
    summary="Wait for a run's output", response=_OBJECT, errors=[404], tags=["agent-protocol"]
)
@api
async def protocol_wait_run(req: Request) -> Response:
    """Wait for a run to end and return its final output."""
    return await _join(req)


@bp.route(route="runs/{run_id}/stream", methods=["GET"], auth_level=ANON)
@documented(
    summary="Join a run's stream (SSE)", streaming=True, errors=[404, 422], tags=["agent-protocol"]
)
@api
async def protocol_stream_run(req: Request) -> Response:
    """Stream a run's events from the start (or after Last-Event-ID), then the live tail."""
    return await _join_stream(req)


@bp.route(route="runs/{run_id}/cancel", methods=["POST"], auth_level=ANON)
@documented(
    summary="Cancel a run",
    response=_OBJECT,
    responses=_STOPPING,
    errors=[404, 409, 422],
    tags=["agent-protocol"],
)
@api
async def protocol_cancel_run(req: Request) -> Response:
    """Cancel a run: at once if pending, as soon as the executing instance notices if running."""
    return await _cancel(req)


@bp.route(route="runs/cancel", methods=["POST"], auth_level=ANON)
@documented(
    summary="Cancel many runs",
    description="Cancel the unfinished runs selected by thread_id, run_ids and status "
    "(`pending`, `running` or `all`). Query `action`: `interrupt` (default) keeps what they "
    "wrote; `rollback` also deletes them and what they added to their threads.",
    request=protocol.RunsCancel,
    status=204,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_cancel_runs(req: Request) -> Response:
    """Cancel every unfinished run the filters select."""
    principal = await principal_of(req)
    rollback = _action(req) == "rollback"
    body = await read_json(req, protocol.RunsCancel)
    await protocol.cancel_many(principal, body, rollback=rollback)
    return Response(status_code=204)


@bp.route(route="runs/batch", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a batch of background runs",
    request=protocol.RunBatch,
    response=_ARRAY,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_create_runs(req: Request) -> Response:
    """Create several background runs at once (each as `POST /runs` would)."""
    principal = await principal_of(req)
    body = await read_json(req, protocol.RunBatch)
    runs = [await protocol.create_run(principal, one) for one in body.root]
    return JSONResponse([run_json(run) for run in runs])


# --- LangGraph thread-scoped paths -----------------------------------------------------------


@bp.route(route="threads/{thread_id}/runs", methods=["POST"], auth_level=ANON)
@documented(
    summary="Create a background run on a thread",
    request=protocol.RunCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_create_run(req: Request) -> Response:
    """Create a background run on the thread."""
    return await _create(req)


@bp.route(route="threads/{thread_id}/stream", methods=["GET"], auth_level=ANON)
@documented(
    summary="Join a thread's stream (SSE)",
    description="LangGraph `threads.join_stream`: the events of each unfinished run of the "
    "thread in turn (event ids `<run id>/<seq>`, resumable with Last-Event-ID); the stream "
    "ends when the thread has no unfinished run left.",
    streaming=True,
    errors=[404, 422],
    tags=["agent-protocol"],
)
@api
async def protocol_join_thread_stream(req: Request) -> Response:
    """Stream the thread's unfinished runs, one after another."""
    principal = await principal_of(req)
    thread_id = req.path_params["thread_id"]
    header = req.headers.get("last-event-id") or req.query_params.get("last_event_id")
    last = protocol.parse_thread_event_id(header)
    # `run_modes` (the SDK's default) means each run's own modes.
    modes = [m for m in query_modes(req, extra=("run_modes",)) or [] if m != "run_modes"]
    await protocol.visible_thread(principal, thread_id)  # 404 before the stream starts
    return thread_sse_response(
        protocol.stream_thread(principal, thread_id, last=last, modes=modes or None)
    )


_STREAM_DOC = (
    "Protocol events (`lifecycle`, `messages`, `tools`, `values`, `updates`, `input`, "
    "`custom`) of the thread's runs on the requested channels, until the client closes the "
    "connection; `since` replays after a seq. The thread may not exist yet (it is created by "
    "the first `run.start`)."
)


async def _open_thread_stream(req: Request) -> Response:
    principal = await principal_of(req)
    body = await read_json(req, thread_stream.EventStreamRequest)
    thread_id = protocol.parse_id(req.path_params["thread_id"], "thread")
    return thread_sse_response(thread_stream.open_stream(principal, thread_id, body))


@bp.route(route="threads/{thread_id}/stream", methods=["POST"], auth_level=ANON)
@documented(
    summary="Open a thread's event stream (Agent Protocol streaming, SSE)",
    description=_STREAM_DOC,
    request=thread_stream.EventStreamRequest,
    streaming=True,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_open_thread_stream(req: Request) -> Response:
    """Stream the thread's runs as Agent Protocol streaming events."""
    return await _open_thread_stream(req)


@bp.route(route="threads/{thread_id}/stream/events", methods=["POST"], auth_level=ANON)
@documented(
    summary="Open a thread's event stream (the langgraph-sdk's path)",
    description=_STREAM_DOC,
    request=thread_stream.EventStreamRequest,
    streaming=True,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_open_thread_event_stream(req: Request) -> Response:
    """The same stream at the path `langgraph-sdk`'s `threads.stream` opens."""
    return await _open_thread_stream(req)


@bp.route(route="threads/{thread_id}/commands", methods=["POST"], auth_level=ANON)
@documented(
    summary="Send a thread command (Agent Protocol streaming)",
    description="`run.start`, `input.respond`, `state.get`, `state.listCheckpoints`; the "
    "answer is a `success` or an `error` object with the command's id.",
    request=thread_stream.Command,
    response=_OBJECT,
    errors=[404],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_command(req: Request) -> Response:
    """Carry out one streaming-protocol command on the thread."""
    principal = await principal_of(req)
    body = await read_json(req, thread_stream.Command)
    if body.method != "run.start":  # run.start creates the thread when it is new
        await protocol.visible_thread(principal, req.path_params["thread_id"])
    answer = await thread_stream.run_command(principal, req.path_params["thread_id"], body)
    return JSONResponse(answer)


@bp.route(route="threads/{thread_id}/runs", methods=["GET"], auth_level=ANON)
@documented(
    summary="List a thread's runs", response=_ARRAY, errors=[404, 422], tags=["agent-protocol"]
)
@api
async def protocol_thread_list_runs(req: Request) -> Response:
    """List the thread's runs, newest first (query: limit, offset, status)."""
    principal = await principal_of(req)
    body = protocol.RunSearch.model_validate(
        {
            "limit": query_int(req, "limit", 10, low=1, high=protocol.MAX_PAGE),
            "offset": query_int(req, "offset", 0, low=0, high=10**9),
        }
    )
    status = req.query_params.get("status")
    if status:
        body = await _with_status(body, status)
    runs = await protocol.search_runs(principal, body, thread_id=_thread_of(req))
    return JSONResponse(runs)


async def _with_status(body: protocol.RunSearch, status: str) -> protocol.RunSearch:
    try:
        return protocol.RunSearch.model_validate({**body.model_dump(), "status": status})
    except ValidationError:
        raise ValidationFailed("Unknown run status.") from None


@bp.route(route="threads/{thread_id}/runs/wait", methods=["POST"], auth_level=ANON)
@documented(
    summary="Run on a thread and wait for the output",
    request=protocol.RunCreate,
    response=_OBJECT,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_run_wait(req: Request) -> Response:
    """Create a run on the thread and wait for its final output."""
    return await _wait(req)


@bp.route(route="threads/{thread_id}/runs/stream", methods=["POST"], auth_level=ANON)
@documented(
    summary="Run on a thread and stream it (SSE)",
    request=protocol.RunCreate,
    streaming=True,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_run_stream(req: Request) -> Response:
    """Create a run on the thread and stream its events (SSE)."""
    return await _stream(req)


@bp.route(route="threads/{thread_id}/runs/{run_id}", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get a run of a thread", response=_OBJECT, errors=[404], tags=["agent-protocol"]
)
@api
async def protocol_thread_get_run(req: Request) -> Response:
    """Get a run of the thread."""
    return await _get(req)


@bp.route(route="threads/{thread_id}/runs/{run_id}", methods=["DELETE"], auth_level=ANON)
@documented(
    summary="Delete a finished run of a thread",
    status=204,
    errors=[404, 409],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_delete_run(req: Request) -> Response:
    """Delete a finished run of the thread."""
    return await _delete(req)


@bp.route(route="threads/{thread_id}/runs/{run_id}/join", methods=["GET"], auth_level=ANON)
@documented(
    summary="Wait for a run of a thread", response=_OBJECT, errors=[404], tags=["agent-protocol"]
)
@api
async def protocol_thread_join_run(req: Request) -> Response:
    """Wait for a run of the thread to end and return its final output."""
    return await _join(req)


@bp.route(route="threads/{thread_id}/runs/{run_id}/stream", methods=["GET"], auth_level=ANON)
@documented(
    summary="Join a thread run's stream (SSE)",
    streaming=True,
    errors=[404, 422],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_stream_run(req: Request) -> Response:
    """Join a run's stream (replay after Last-Event-ID, then the live tail)."""
    return await _join_stream(req)


@bp.route(route="threads/{thread_id}/runs/{run_id}/cancel", methods=["POST"], auth_level=ANON)
@documented(
    summary="Cancel a run of a thread",
    response=_OBJECT,
    responses=_STOPPING,
    errors=[404, 409, 422],
    tags=["agent-protocol"],
)
@api
async def protocol_thread_cancel_run(req: Request) -> Response:
    """Cancel a run of the thread."""
    return await _cancel(req)
