"""What a run streams: the event names, SDK items as messages, SDK stream events as run events.

Every event a run produces has a `seq` (its SSE `id:`), a name and JSON data. Names follow the
LangGraph server, so its SDK clients parse them unchanged:

- `metadata`  `{"run_id", "thread_id"}` — first event of every run;
- `values`    `{"messages": [...]}` — the thread's state when the run starts and when it ends
  (with `__interrupt__` when it pauses for review);
- `messages`  `[chunk, metadata]` — a token delta (`chunk.content`) of an assistant message;
- `updates`   `{"<agent>": {"messages": [...]}}` — a finished message, tool call, tool result,
  or `{"<agent>": {"handoff": {"to": "<agent>"}}}` — a handoff;
- `custom`    any JSON — progress a tool emitted (shared/core/context.py `emit_progress`);
- `events`    `{"event", "name", "data"}` — every Agents SDK stream event, as the SDK names
  it (raw model response events, run items, agent updates); recorded only for runs created
  with `stream_mode` "events";
- `debug`     `{"type": "task" | "task_result", "step", "timestamp", "payload"}` — each agent
  turn, tool call and tool result; recorded only for runs created with `stream_mode` "debug";
- `error`     `{"error", "message"}` — the run failed (safe message, never internals);
- `end`       `{"run_id", "status"}` — last event of every execution of a run.

This module is pure: no I/O, no state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from agents import (
    AgentUpdatedStreamEvent,
    HandoffCallItem,
    HandoffOutputItem,
    MessageOutputItem,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    StreamEvent,
    ToolCallItem,
    ToolCallOutputItem,
)
from openai.types.responses import ResponseTextDeltaEvent

Json = dict[str, Any]

# Events sent whatever stream modes the client asked for.
ALWAYS_SENT = frozenset({"metadata", "error", "end"})
# Stream modes a client may ask for, and the event name each one selects.
STREAM_MODES: dict[str, str | None] = {
    "values": "values",
    "messages": "messages",
    "messages-tuple": "messages",
    "updates": "updates",
    "custom": "custom",
    "events": "events",
    "debug": "debug",
    # Accepted for LangGraph compatibility; Ascent emits no events of these kinds.
    "tasks": None,
    "checkpoints": None,
}
ALL_MODES = ("values", "messages", "updates")
# Modes whose events cost a row per SDK event: recorded only when the run asked for them.
RECORDED_ON_REQUEST = frozenset({"events", "debug"})


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


def _as_dict(item: Any) -> Json:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    return dict(dump(exclude_unset=True)) if callable(dump) else {}


def to_message(item: Any) -> Json | None:
    """An Agents SDK item as an Agent Protocol / LangGraph message (None for other items)."""
    data = _as_dict(item)
    kind = data.get("type", "message")
    if kind == "message":
        role = str(data.get("role", "user"))
        message: Json = {
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


def to_messages(items: Iterable[Any]) -> list[Json]:
    """Convert SDK items to messages, dropping items that are not messages or tool traffic."""
    return [m for m in (to_message(i) for i in items) if m is not None]


def run_events_of(event: StreamEvent, agent_name: str) -> list[tuple[str, Any]]:
    """Translate one SDK stream event into run events (name, data); most translate to none."""
    if isinstance(event, RawResponsesStreamEvent):
        data = event.data
        if isinstance(data, ResponseTextDeltaEvent):
            chunk = {"type": "AIMessageChunk", "content": data.delta, "id": data.item_id}
            return [("messages", [chunk, {"agent": agent_name}])]
        return []
    if isinstance(event, RunItemStreamEvent):
        item = event.item
        if isinstance(item, HandoffOutputItem):
            source, target = item.source_agent.name, item.target_agent.name
            return [("updates", {source: {"handoff": {"to": target}}})]
        if isinstance(
            item, MessageOutputItem | ToolCallItem | ToolCallOutputItem | HandoffCallItem
        ):
            message = to_message(item.raw_item)
            if message is not None:
                return [("updates", {item.agent.name: {"messages": [message]}})]
    return []


def sdk_event_json(event: StreamEvent) -> Json:
    """One Agents SDK stream event as the `events` stream mode sends it."""
    if isinstance(event, RawResponsesStreamEvent):
        data = event.data.model_dump(mode="json", exclude_none=True)
        return {"event": event.type, "name": event.data.type, "data": data}
    if isinstance(event, RunItemStreamEvent):
        item = _as_dict(event.item.raw_item)
        return {"event": event.type, "name": event.name, "data": {"item": item}}
    return {"event": event.type, "name": event.new_agent.name, "data": {}}


def debug_event_of(event: StreamEvent, step: int) -> Json | None:
    """The `debug` event of an SDK event: a task (an agent's turn, a tool call) or its result;
    None for token deltas and other events."""
    now = datetime.now(UTC).isoformat()
    if isinstance(event, AgentUpdatedStreamEvent):
        payload: Json = {"id": f"agent:{step}", "name": event.new_agent.name, "input": None}
        return {"type": "task", "step": step, "timestamp": now, "payload": payload}
    if not isinstance(event, RunItemStreamEvent):
        return None
    raw = _as_dict(event.item.raw_item)
    if isinstance(event.item, ToolCallItem):
        payload = {"id": raw.get("call_id"), "name": raw.get("name"), "input": raw.get("arguments")}
        return {"type": "task", "step": step, "timestamp": now, "payload": payload}
    if isinstance(event.item, ToolCallOutputItem):
        payload = {"id": raw.get("call_id"), "name": "tool", "result": raw.get("output")}
        return {"type": "task_result", "step": step, "timestamp": now, "payload": payload}
    if isinstance(event.item, MessageOutputItem):
        payload = {"id": raw.get("id"), "name": event.item.agent.name, "result": to_message(raw)}
        return {"type": "task_result", "step": step, "timestamp": now, "payload": payload}
    return None


def token_of(name: str, data: Any) -> str | None:
    """The text delta a `messages` event carries (None for every other event)."""
    if name != "messages" or not isinstance(data, list) or not data:
        return None
    chunk = data[0]
    if isinstance(chunk, Mapping) and isinstance(chunk.get("content"), str):
        return str(chunk["content"])
    return None
