"""Persisted run events: what a run streams, stored so any instance can replay and tail it.

Every event a run produces is a row of `run_events` (tenant, run, seq, event, data). The SSE
`id:` of an event is its `seq`, so a client that reconnects with `Last-Event-ID: <seq>` gets
exactly the events after it, then the live tail, from whichever instance it reaches: the tail
polls the table (no in-memory fan-out).

Event names follow the LangGraph server, so its SDK clients parse them unchanged:

- `metadata`  `{"run_id", "thread_id"}` — first event of every run;
- `values`    `{"messages": [...]}` — the thread's state when the run starts and when it ends;
- `messages`  `[chunk, metadata]` — a token delta (`chunk.content`) of an assistant message;
- `updates`   `{"<agent>": {"messages": [...]}}` — a finished message, tool call, tool result,
  or `{"<agent>": {"handoff": {"to": "<agent>"}}}` — a handoff;
- `error`     `{"error", "message"}` — the run failed (safe message, never internals);
- `end`       `{"run_id", "status"}` — last event of every run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import RunEvent
from shared.settings import get_settings

# Events sent whatever stream modes the client asked for.
ALWAYS_SENT = frozenset({"metadata", "error", "end"})
# Stream modes a client may ask for, and the event name each one selects.
STREAM_MODES: dict[str, str | None] = {
    "values": "values",
    "messages": "messages",
    "messages-tuple": "messages",
    "updates": "updates",
    # Accepted for LangGraph compatibility; Ascent emits no events of these kinds.
    "custom": None,
    "events": None,
    "debug": None,
    "tasks": None,
    "checkpoints": None,
}
ALL_MODES = ("values", "messages", "updates")


def selected_events(stream_mode: Iterable[str] | None) -> frozenset[str]:
    """The event names a list of stream modes selects (None: every event)."""
    if stream_mode is None:
        return frozenset(ALL_MODES) | ALWAYS_SENT
    names = {STREAM_MODES[m] for m in stream_mode if m in STREAM_MODES}
    return frozenset(n for n in names if n) | ALWAYS_SENT


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or []:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    return dict(dump(exclude_unset=True)) if callable(dump) else {}


def to_message(item: Any) -> dict[str, Any] | None:
    """An Agents SDK item as an Agent Protocol / LangGraph message (None for other items)."""
    data = _as_dict(item)
    kind = data.get("type", "message")
    if kind == "message":
        role = str(data.get("role", "user"))
        message: dict[str, Any] = {
            "role": role,
            "type": {"user": "human", "assistant": "ai"}.get(role, role),
            "content": _text(data.get("content")),
        }
        if data.get("id"):
            message["id"] = str(data["id"])
        return message
    if kind == "function_call":
        try:
            args = json.loads(data.get("arguments") or "{}")
        except json.JSONDecodeError:
            args = {}
        return {
            "role": "assistant",
            "type": "ai",
            "content": "",
            "tool_calls": [{"id": data.get("call_id"), "name": data.get("name"), "args": args}],
        }
    if kind == "function_call_output":
        output = data.get("output")
        return {
            "role": "tool",
            "type": "tool",
            "content": output if isinstance(output, str) else json.dumps(output),
            "tool_call_id": data.get("call_id"),
        }
    return None


def to_messages(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Convert SDK items to messages, dropping items that are not messages or tool traffic."""
    return [m for m in (to_message(i) for i in items) if m is not None]


def sse(seq: int | None, event: str, data: Any) -> bytes:
    """One Server-Sent Event: `id`, `event` and one `data` line of JSON."""
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventWriter:
    """Appends a run's events with consecutive seq numbers; the run's single writer owns it.

    `write` batches: events are committed together when 64 are waiting or one poll interval
    (ASCENT_RUN_POLL_SECONDS) after the first of them, so a streamed answer costs a few
    transactions instead of one per token, while tailing readers, who poll at that same
    interval, see no extra delay. The closing rows of a run go through `take_pending`, into the
    run's final transaction, after every batch already on its way has landed.
    """

    MAX_BATCH = 64

    def __init__(self, *, tenant_id: str, run_id: str, next_seq: int) -> None:
        """Start writing at `next_seq` (one past the last persisted event)."""
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.next_seq = next_seq
        self._buffer: list[tuple[int, str, Any]] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    def stage(self, event: str, data: Any) -> tuple[int, str, Any]:
        """Reserve the next seq for an event, to be written with `write` or in a transaction."""
        row = (self.next_seq, event, data)
        self.next_seq += 1
        return row

    async def write(self, event: str, data: Any) -> None:
        """Queue one event; it is committed with its batch (see the class docstring)."""
        self._buffer.append(self.stage(event, data))
        if len(self._buffer) >= self.MAX_BATCH:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(get_settings().run_poll_seconds)
        self._timer = None
        # Shielded: cancelling the timer must never abandon rows already taken off the buffer.
        await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Commit every queued event now."""
        async with self._lock:
            rows, self._buffer = self._buffer, []
            if not rows:
                return
            async with db_session() as db:
                await repo.append_run_events(
                    session=db, tenant_id=self.tenant_id, run_id=self.run_id, events=rows
                )
                await db.commit()

    async def take_pending(self) -> list[tuple[int, str, Any]]:
        """Hand over the queued events for the caller's transaction (after in-flight batches)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            rows, self._buffer = self._buffer, []
        return rows


async def read_events(*, tenant_id: str, run_id: str, after: int = 0) -> Sequence[RunEvent]:
    """Every persisted event of a run after `after`, in order."""
    out: list[RunEvent] = []
    while True:
        async with db_session() as db:
            page = await repo.list_run_events(
                session=db, tenant_id=tenant_id, run_id=run_id, after=after
            )
        out.extend(page)
        if len(page) < 500:
            return out
        after = page[-1].seq


async def tail_events(
    *, tenant_id: str, run_id: str, after: int = 0
) -> AsyncIterator[RunEvent | None]:
    """Persisted events after `after`, then new ones as they land, until the run has ended.

    Polls the table every ASCENT_RUN_POLL_SECONDS. Yields None as a heartbeat when nothing
    arrived for ASCENT_STREAM_KEEPALIVE_SECONDS, so the caller can keep the connection alive.
    """
    settings = get_settings()
    idle = 0.0
    while True:
        async with db_session() as db:
            run = await repo.get_run(session=db, tenant_id=tenant_id, run_id=run_id)
            finished = run is None or run.status in repo.TERMINAL_RUN_STATUSES
            page = await repo.list_run_events(
                session=db, tenant_id=tenant_id, run_id=run_id, after=after
            )
        for row in page:
            after = row.seq
            yield row
            if row.event == "end":
                return
        if page:
            idle = 0.0
            continue
        if finished:
            return
        await asyncio.sleep(settings.run_poll_seconds)
        idle += settings.run_poll_seconds
        if idle >= settings.stream_keepalive_seconds:
            idle = 0.0
            yield None
