"""Agent Protocol's thread streaming protocol over HTTP: `POST /threads/{id}/stream` (SSE) and
`POST /threads/{id}/commands` (langchain-ai/agent-protocol, `streaming/protocol.cddl`).

Events. A run's stored events (shared/runs/messages.py) are translated into protocol events on
the way out, so nothing extra is stored:

- `lifecycle`: `started` (the run's `metadata`), then `completed`, `failed` or `interrupted`
  (its `end`);
- `messages`: `message-start`, `content-block-start`, `content-block-delta` (`text-delta`) per
  token, `content-block-finish` and `message-finish` when the message is complete;
- `tools`: `tool-started` (a tool call) and `tool-finished` (its output);
- `values` (full state), `updates` (`{"node": <agent>, "values": ...}`), `custom` (a tool's
  progress, `{"name": "progress", "payload": ...}`) and `input.requested` (channel `input`:
  a review waiting for a decision, `interruptId` = the review id).

Every event is at the root namespace `[]` (an Agents SDK run has no subgraphs: a handoff shows
as an `updates` event). `seq` is monotonic over the thread: the run's stored event seq, offset
by the events of the thread's earlier runs, times 8, plus the event's index within that stored
event (one stored event may become several protocol events). `since` replays after a seq; a
stream without `since` starts with the current `values`, replays the thread's newest run, then
follows the thread's runs as they go.
A stream stays open until the client closes it (one connection is one subscription), across
runs: new runs on the thread wake it (a `thread-runs:` notification). It may be opened before
the thread exists (the langgraph-sdk mints the id, then sends `run.start`). Ids and keys are
sent in both the spec's camelCase and the langgraph-sdk's snake_case (`eventId`/`event_id`,
`interruptId`/`interrupt_id`, `runId`/`run_id`); commands accept either. Limits: a rollback
deletes runs, which shifts later runs' `seq`; `checkpoints` and `tasks` carry no events; GET on
the same path is LangGraph's SSE join stream, not a WebSocket (Azure Functions HTTP triggers
cannot upgrade); `/threads/{id}/stream/events` is the langgraph-sdk's name for the POST.

Commands: `run.start` (starts a background run, creating the thread if needed, or, when the
thread is paused for review, resumes it with `input` as the decision), `input.respond`,
`state.get` and `state.listCheckpoints`. Others answer `not_supported` or `unknown_command`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func
from sqlmodel import col, select

from shared.api import protocol, sse, thread_state
from shared.core.errors import AscentError
from shared.core.settings import get_settings
from shared.db import direct, repo
from shared.db.engine import db_session
from shared.db.models import Run, RunEvent, Thread
from shared.db.views import aware
from shared.platform.notify import get_notifier
from shared.runs.records import EventRow, thread_runs_topic
from shared.runs.watch import PAGE, follow, read_events, wake_timeout
from shared.security import thread_access
from shared.security.auth import Principal

Json = dict[str, Any]
CHANNELS = frozenset(
    {"values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks"}
    | {"custom"}
)
# Protocol events per stored event, at most (see the module docstring's `seq`).
FAN_OUT = 8
_LIFECYCLE = {"success": "completed", "error": "failed", "timeout": "failed"}


class EventStreamRequest(BaseModel):
    """Body of `POST /threads/{thread_id}/stream`."""

    model_config = ConfigDict(extra="ignore")

    channels: list[str] = Field(..., min_length=1, max_length=20)
    namespaces: list[list[str]] | None = Field(None, max_length=100)
    depth: int | None = Field(None, ge=0)
    since: int | None = Field(None, ge=0, le=2**53 - 1)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        for channel in value:
            if channel not in CHANNELS and not (
                channel.startswith("custom:") and len(channel) > len("custom:")
            ):
                raise ValueError(f"unknown channel; use {sorted(CHANNELS)} or custom:<name>")
        return value


class Command(BaseModel):
    """Body of `POST /threads/{thread_id}/commands`."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(..., ge=0, le=2**53 - 1)
    method: str = Field(..., min_length=1, max_length=100)
    params: Json = Field(default_factory=dict)


def _channel_ok(channels: list[str], method: str, data: Any) -> bool:
    """Whether an event of `method` is on one of the requested channels."""
    if method == "input.requested":
        return "input" in channels
    if method == "custom":
        name = data.get("name") if isinstance(data, dict) else None
        return "custom" in channels or f"custom:{name}" in channels
    return method in channels


def _namespace_ok(request: EventStreamRequest) -> bool:
    """Whether the root namespace `[]` (where every Ascent event is) passes the filter."""
    return request.namespaces is None or any(prefix == [] for prefix in request.namespaces)


@dataclass
class _Translator:
    """Turns one run's stored events into protocol events (method, data), in order."""

    agent: str
    open_message: str | None = None
    text: list[str] = field(default_factory=list)

    def events(self, name: str, data: Any) -> Iterator[tuple[str, Any]]:
        """The protocol events of one stored event."""
        if name == "metadata":
            yield "lifecycle", {"event": "started", "graphName": self.agent}
        elif name == "values" and isinstance(data, dict):
            yield "values", {k: v for k, v in data.items() if k != "__interrupt__"}
            for interrupt in data.get("__interrupt__") or []:
                yield (
                    "input.requested",
                    {
                        "interruptId": interrupt.get("id"),
                        "interrupt_id": interrupt.get("id"),
                        "payload": interrupt.get("value"),
                        "value": interrupt.get("value"),
                    },
                )
        elif name == "messages" and isinstance(data, list) and data:
            yield from self._token(data[0])
        elif name == "updates" and isinstance(data, dict):
            for node, update in data.items():
                yield "updates", {"node": node, "values": update}
                for message in (update or {}).get("messages") or []:
                    yield from self._finished(message)
        elif name == "custom":
            yield "custom", {"name": "progress", "payload": data}
        elif name == "end" and isinstance(data, dict):
            status = str(data.get("status"))
            yield "lifecycle", {"event": _LIFECYCLE.get(status, "interrupted")}

    def _token(self, chunk: Any) -> Iterator[tuple[str, Any]]:
        message_id = str(chunk.get("id") or "")
        if message_id != self.open_message:
            self.open_message, self.text = message_id, []
            yield "messages", {"event": "message-start", "role": "ai", "id": message_id}
            start = {"type": "text", "text": ""}
            yield "messages", {"event": "content-block-start", "index": 0, "content": start}
        delta = str(chunk.get("content") or "")
        self.text.append(delta)
        yield (
            "messages",
            {
                "event": "content-block-delta",
                "index": 0,
                "delta": {"type": "text-delta", "text": delta},
            },
        )

    def _finished(self, message: Json) -> Iterator[tuple[str, Any]]:
        for call in message.get("tool_calls") or []:
            yield (
                "tools",
                {
                    "event": "tool-started",
                    "toolCallId": call.get("id"),
                    "toolName": call.get("name"),
                    "input": call.get("args"),
                },
            )
        if message.get("role") == "tool":
            yield (
                "tools",
                {
                    "event": "tool-finished",
                    "toolCallId": message.get("tool_call_id"),
                    "output": message.get("content"),
                },
            )
            return
        if message.get("role") != "assistant" or not message.get("content"):
            return
        message_id = str(message.get("id") or "")
        if message_id != self.open_message:
            yield "messages", {"event": "message-start", "role": "ai", "id": message_id}
            start = {"type": "text", "text": ""}
            yield "messages", {"event": "content-block-start", "index": 0, "content": start}
        final = {"type": "text", "text": message["content"]}
        yield "messages", {"event": "content-block-finish", "index": 0, "content": final}
        yield "messages", {"event": "message-finish"}
        self.open_message, self.text = None, []


async def _thread_runs(
    principal: Principal, thread_id: str
) -> tuple[list[Run], dict[str, int], dict[str, int]]:
    """The thread's runs, oldest first; each one's seq offset (earlier runs' events) and last
    stored seq."""
    async with db_session() as db:
        runs = await repo.search_runs(
            session=db,
            tenant_id=principal.tenant_id,
            thread_id=thread_id,
            visible=thread_access.run_visible(principal),
        )
        ids = [r.id for r in runs]
        stmt = (
            select(RunEvent.run_id, func.max(RunEvent.seq))
            .where(col(RunEvent.tenant_id) == principal.tenant_id, col(RunEvent.run_id).in_(ids))
            .group_by(col(RunEvent.run_id))
        )
        last = {run_id: int(seq or 0) for run_id, seq in (await db.exec(stmt)).all()}
    ordered = sorted(runs, key=lambda r: (aware(r.created_at), r.id))
    offsets: dict[str, int] = {}
    total = 0
    for run in ordered:
        offsets[run.id] = total
        total += last.get(run.id, 0)
    return ordered, offsets, last


async def _rows(principal: Principal, run: Run, after: int) -> AsyncIterator[EventRow | None]:
    """A run's events after `after`: every stored one for a run that has ended (a paused and
    resumed run has an `end` per part), else followed live to its `end`."""
    if run.status not in repo.TERMINAL_RUN_STATUSES:
        async for row in follow(tenant_id=principal.tenant_id, run_id=run.id, after=after):
            yield row
        return
    while True:
        rows = await direct.read(
            partial(read_events, tenant_id=principal.tenant_id, run_id=run.id, after=after)
        )
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _frame(run_id: str, seq: int, method: str, data: Any) -> bytes:
    """One protocol event as SSE (`id:` = `<run id>/<seq>`, `event:` = its method)."""
    event_id = f"{run_id}/{seq}"
    event = {
        "type": "event",
        "eventId": event_id,
        "event_id": event_id,
        "seq": seq,
        "method": method,
        "params": {"namespace": [], "timestamp": int(time.time() * 1000), "data": data},
    }
    return sse.encode(event, event=method, id=event_id)


async def open_stream(
    principal: Principal, thread_id: str, request: EventStreamRequest
) -> AsyncIterator[bytes]:
    """The thread's protocol events on the requested channels, until the client goes (see the
    module docstring). A thread that does not exist yet (a client-chosen id before its first
    `run.start`) is waited for, as one another tenant owns is: both look the same."""
    given = protocol.parse_id(thread_id, "thread")
    notifier = get_notifier()
    # Re-read at least this often when nothing wakes the stream (the poll fallback's interval
    # where no notification channel exists).
    pause = wake_timeout() if notifier.channel else get_settings().run_poll_seconds
    with notifier.subscribe(thread_runs_topic(given)) as wakes:
        thread = await _find(principal, given)
        while thread is None:
            if not await wakes.wait(pause):
                yield sse.KEEPALIVE
            thread = await _find(principal, given)
        if not _namespace_ok(request):
            while True:  # nothing here can match: stay subscribed, quietly
                await wakes.wait(wake_timeout())
                yield sse.KEEPALIVE
        channels = request.channels
        since = request.since
        if since is None and "values" in channels:
            state = await thread_state.get_state(principal, thread.id)
            yield _frame(thread.id, 0, "values", state["values"])
        # How far each run's stored events have been streamed (or skipped): a run is streamed
        # again only when it has more (a resumed run), from where it stood.
        streamed: dict[str, int] = {}
        first = True
        while True:
            runs, offsets, last = await _thread_runs(principal, thread.id)
            if first and since is None:
                # Without `since`, the thread's newest run is replayed from its start (a client
                # that subscribes just after `run.start` still sees it begin, end or pause);
                # older runs are history, skipped.
                for run in runs[:-1]:
                    streamed[run.id] = last.get(run.id, 0)
            first = False
            todo = [
                r
                for r in runs
                if r.status in ("pending", "running") or streamed.get(r.id, 0) < last.get(r.id, 0)
            ]
            if not todo:
                if not await wakes.wait(pause):
                    yield sse.KEEPALIVE
                continue
            for run in todo:
                base = offsets[run.id]
                ended = run.status in repo.TERMINAL_RUN_STATUSES
                # An ended run is read from its start: the translation is stateful (an open
                # message); `streamed` and `since` filter what is sent.
                start = 0 if ended else streamed.get(run.id, 0)
                translator = _Translator(run.agent)
                async for row in _rows(principal, run, start):
                    if row is None:
                        yield sse.KEEPALIVE
                        continue
                    stored_seq, name, data = row
                    if stored_seq <= streamed.get(run.id, 0):
                        list(translator.events(name, data))  # state only: already sent
                        continue
                    streamed[run.id] = stored_seq
                    for index, (method, payload) in enumerate(translator.events(name, data)):
                        seq = (base + stored_seq) * FAN_OUT + min(index, FAN_OUT - 1)
                        if since is not None and seq <= since:
                            continue
                        if _channel_ok(channels, method, payload):
                            yield _frame(run.id, seq, method, payload)
                streamed[run.id] = max(streamed.get(run.id, 0), last.get(run.id, 0) if ended else 0)


async def _find(principal: Principal, thread_id: str) -> Thread | None:
    """The thread if the principal sees it, else None (missing and another's alike)."""
    async with db_session() as db:
        return await thread_access.find_thread(db, principal, thread_id)


async def run_command(principal: Principal, thread_id: str, command: Command) -> Json:
    """Carry out one command; a `success` or `error` response (never raises for the command's
    own failures)."""
    try:
        result = await _dispatch(principal, thread_id, command)
    except ValidationError as error:
        message = "; ".join(str(e["msg"]) for e in error.errors())
        return {"type": "error", "id": command.id, "error": "invalid_argument", "message": message}
    except AscentError as error:
        code = {404: "no_such_run", 409: "invalid_argument", 422: "invalid_argument"}
        return {
            "type": "error",
            "id": command.id,
            "error": code.get(error.status, "unknown_error"),
            "message": error.detail,
        }
    if isinstance(result, str):
        return {"type": "error", "id": command.id, "error": result, "message": command.method}
    return {"type": "success", "id": command.id, "result": result}


_NOT_OVER_HTTP = frozenset(
    {"subscription.subscribe", "subscription.unsubscribe", "subscription.reconnect"}
)


async def _dispatch(principal: Principal, thread_id: str, command: Command) -> Json | str:
    """The command's result, or an error code for commands Ascent does not carry out."""
    params = command.params
    if command.method == "run.start":
        return await _run_start(principal, thread_id, params)
    if command.method == "input.respond":
        entries = params.get("responses") or [params]
        resume = {
            str(e.get("interruptId") or e.get("interrupt_id")): e.get("response") for e in entries
        }
        body = protocol.RunCreate(command={"resume": resume})
        run = await protocol.create_run(principal, body, thread_id=thread_id)
        return {"runId": run.id, "run_id": run.id}
    if command.method == "state.get":
        state = await thread_state.get_state(principal, thread_id)
        keys = params.get("keys")
        values = state["values"]
        if isinstance(keys, list):
            values = {k: v for k, v in values.items() if k in keys}
        return {"values": values, "checkpoint": {"id": state["checkpoint"]["checkpoint_id"]}}
    if command.method == "state.listCheckpoints":
        limit = params.get("limit")
        states = await thread_state.history(
            principal, thread_id, limit=limit if isinstance(limit, int) and limit > 0 else 10
        )
        return {"checkpoints": [_summary(s, len(states) - i) for i, s in enumerate(states)]}
    if command.method in _NOT_OVER_HTTP or command.method in ("state.fork", "input.inject"):
        return "not_supported"
    return "unknown_command"


async def _run_start(principal: Principal, thread_id: str, params: Json) -> Json:
    """`run.start`: resume a paused thread with `input`, else start a background run."""
    given = protocol.parse_id(thread_id, "thread")
    async with db_session() as db:
        thread = await thread_access.find_thread(db, principal, given)
    if thread is not None and thread.status == "interrupted":
        body = protocol.RunCreate(command={"resume": params.get("input")})
        run = await protocol.create_run(principal, body, thread_id=thread.id)
        return {"runId": run.id, "run_id": run.id}
    body = protocol.RunCreate.model_validate(
        {
            "assistant_id": params.get("assistantId") or params.get("assistant_id"),
            "input": params.get("input"),
            "config": params.get("config"),
            "metadata": params.get("metadata"),
            "if_not_exists": "create",
        }
    )
    run = await protocol.create_run(principal, body, thread_id=given)
    return {"runId": run.id, "run_id": run.id}


def _summary(state: Json, step: int) -> Json:
    """A thread state as a `CheckpointSummary`."""
    metadata = state.get("metadata") or {}
    return {
        "id": state["checkpoint"]["checkpoint_id"],
        "timestamp": state.get("created_at"),
        "step": step,
        "nodeName": metadata.get("agent_id"),
        "metadata": metadata,
    }
