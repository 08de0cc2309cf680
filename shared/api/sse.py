"""The one Server-Sent Events encoder for every stream Ascent serves.

Agent Protocol (LangGraph-style runs and thread streams: `id:`, `event:`, JSON `data:`), OpenAI
chat completions (`data:` chunks, then `data: [DONE]`) and the Responses API (`event:` is the
event's type) all frame their events here, so the wire format has one definition:

- an event is optional `id:` and `event:` lines, then its data as one `data:` line, then a blank
  line; data is compact JSON (a pydantic model is dumped by its own type, so `openai` types keep
  their field rules), which never holds a raw newline, so one `data:` line always suffices;
- `KEEPALIVE` is a comment line, which every client ignores, sent while a run is quiet so
  proxies keep the connection open;
- `DONE` is OpenAI's end-of-stream sentinel, the only data that is not JSON.

An `id:` or `event:` value must not hold a newline (it would start a new field): the ids and names
Ascent sends are generated, never user input, and `encode` refuses one that does.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import BaseModel

MEDIA_TYPE: Final = "text/event-stream"
KEEPALIVE: Final = b": keepalive\n\n"
DONE: Final = b"data: [DONE]\n\n"


def _field(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {name} cannot hold a line break")
    return f"{name}: {value}\n"


def encode(data: Any, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event: `id:` and `event:` when given, then `data:` with the data as compact JSON."""
    if isinstance(data, BaseModel):
        body = data.model_dump_json()
    else:
        body = json.dumps(data, separators=(",", ":"))
    head = (_field("id", id) if id is not None else "") + (
        _field("event", event) if event is not None else ""
    )
    return f"{head}data: {body}\n\n".encode()
