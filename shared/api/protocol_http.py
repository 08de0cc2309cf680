"""HTTP helpers of the Agent Protocol functions: query parameters and SSE responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from shared.api import sse
from shared.core.errors import ValidationFailed
from shared.db.models import Run
from shared.db.views import public_thread_id
from shared.runs.messages import STREAM_MODES

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def query_int(req: Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within bounds (422 otherwise)."""
    raw = req.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"Query parameter {name!r} must be an integer.") from None
    if not low <= value <= high:
        raise ValidationFailed(f"Query parameter {name!r} must be in [{low}, {high}].")
    return value


def query_bool(req: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (`true`/`false`/`1`/`0`; 422 otherwise)."""
    raw = req.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValidationFailed(f"Query parameter {name!r} must be true or false.")


def query_modes(req: Request, extra: tuple[str, ...] = ()) -> list[str] | None:
    """Repeated `stream_mode` query parameters (None when absent; 422 for unknown modes;
    `extra` names more accepted values)."""
    modes = [m for m in req.query_params.getlist("stream_mode") if m]
    for mode in modes:
        if mode not in STREAM_MODES and mode not in extra:
            raise ValidationFailed(f"Unknown stream mode {mode!r}.")
    return modes or None


def run_paths(run: Run) -> dict[str, str]:
    """Where a run lives, relative to the API base (LangGraph clients resolve them so)."""
    thread_id = public_thread_id(run)
    base = f"/threads/{thread_id}/runs/{run.id}" if thread_id else f"/runs/{run.id}"
    return {"Content-Location": base, "Location": f"{base}/stream"}


def sse_response(run: Run, events: AsyncIterator[bytes]) -> StreamingResponse:
    """A text/event-stream response whose Location lets clients reconnect with Last-Event-ID."""
    return StreamingResponse(
        events, media_type=sse.MEDIA_TYPE, headers={**SSE_HEADERS, **run_paths(run)}
    )


def thread_sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    """A text/event-stream response of a thread's runs (ids `<run id>/<seq>`)."""
    return StreamingResponse(events, media_type=sse.MEDIA_TYPE, headers=dict(SSE_HEADERS))


async def client_gone(req: Request) -> None:
    """Return when the client disconnects (the request body must have been read already).

    Reading the ASGI channel after the body yields `http.disconnect` once the client is gone,
    so this waits on the connection itself, without polling.
    """
    while True:
        message: Any = await req.receive()
        if message.get("type") == "http.disconnect":
            return
