"""Turn a run's stream events (Agent Protocol / LangGraph channels) into what the chat shows.

The chat needs five things from a stream: text tokens (`messages-tuple`), tool calls and their
outputs, handoffs (`updates`), approvals a paused run waits for (`values.__interrupt__`), and how
the run ended (`error`, `end`). Handoffs travel as `transfer_to_<agent>` tool calls too; those
are shown once, as a handoff step, not as a tool step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ascent_ui.client import Json, StreamEvent


@dataclass(frozen=True)
class TextDelta:
    """Tokens of the assistant's answer."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """An agent called a tool."""

    call_id: str
    agent: str
    name: str
    arguments: Json


@dataclass(frozen=True)
class ToolResult:
    """A tool call's output."""

    call_id: str
    output: str


@dataclass(frozen=True)
class Handoff:
    """One agent handed the conversation to another."""

    source: str
    target: str


@dataclass(frozen=True)
class Approval:
    """The run paused: a person must approve or reject this review."""

    review: Json


@dataclass(frozen=True)
class Refusal:
    """A guardrail refused the input or the output."""

    message: str


@dataclass(frozen=True)
class Failure:
    """The run failed for another reason."""

    message: str


@dataclass(frozen=True)
class Ended:
    """The run's stream ended with this status."""

    status: str


Shown = TextDelta | ToolCall | ToolResult | Handoff | Approval | Refusal | Failure | Ended


def _arguments(raw: Any) -> Json:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"raw": raw}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def is_guardrail(message: str) -> bool:
    """Whether a run error is a guardrail's refusal rather than a fault."""
    return "guardrail" in message.lower()


@dataclass
class Interpreter:
    """Stateful reading of one run's events (remembers handoff calls and reviews shown)."""

    _handoff_calls: set[str] = field(default_factory=set)
    _reviews: set[str] = field(default_factory=set)

    def read(self, event: StreamEvent) -> list[Shown]:
        """What to show for one event (often nothing)."""
        data = event.data
        if event.event == "messages" and isinstance(data, list) and data:
            chunk = data[0] if isinstance(data[0], dict) else {}
            text = chunk.get("content")
            if chunk.get("type") == "AIMessageChunk" and isinstance(text, str) and text:
                return [TextDelta(text)]
            return []
        if event.event == "updates" and isinstance(data, dict):
            return self._updates(data)
        if event.event == "values" and isinstance(data, dict):
            shown: list[Shown] = []
            for interrupt in data.get("__interrupt__") or []:
                review = interrupt.get("value") if isinstance(interrupt, dict) else None
                if isinstance(review, dict) and review.get("review_id") not in self._reviews:
                    self._reviews.add(str(review.get("review_id")))
                    shown.append(Approval(review))
            return shown
        if event.event == "error" and isinstance(data, dict):
            message = str(data.get("message") or data.get("error") or "the run failed")
            return [Refusal(message) if is_guardrail(message) else Failure(message)]
        if event.event == "end" and isinstance(data, dict):
            return [Ended(str(data.get("status")))]
        return []

    def _updates(self, data: Json) -> list[Shown]:
        shown: list[Shown] = []
        for agent, update in data.items():
            if not isinstance(update, dict):
                continue
            handoff = update.get("handoff")
            if isinstance(handoff, dict) and handoff.get("to"):
                shown.append(Handoff(str(agent), str(handoff["to"])))
            for message in update.get("messages") or []:
                if not isinstance(message, dict):
                    continue
                for call in message.get("tool_calls") or []:
                    name = str(call.get("name", ""))
                    call_id = str(call.get("id", ""))
                    if name.startswith("transfer_to_"):
                        self._handoff_calls.add(call_id)
                        continue
                    shown.append(ToolCall(call_id, str(agent), name, _arguments(call.get("args"))))
                if message.get("type") == "tool":
                    call_id = str(message.get("tool_call_id", ""))
                    if call_id not in self._handoff_calls:
                        shown.append(ToolResult(call_id, str(message.get("content", ""))))
        return shown


@dataclass(frozen=True)
class HistoryEntry:
    """One item of a resumed conversation: a user or assistant message, or a tool step."""

    role: str
    text: str = ""
    tool: str | None = None
    arguments: Json | None = None
    output: str | None = None


def history(items: list[Json]) -> list[HistoryEntry]:
    """A thread's stored items (`GET /threads/{id}/messages`) as chat entries, in order."""
    entries: list[HistoryEntry] = []
    calls: dict[str, int] = {}
    for item in items:
        kind = item.get("type")
        role = item.get("role")
        if kind == "function_call":
            name = str(item.get("name", ""))
            if name.startswith("transfer_to_"):
                entries.append(HistoryEntry("handoff", text=name.removeprefix("transfer_to_")))
                calls[str(item.get("call_id"))] = -1
                continue
            calls[str(item.get("call_id"))] = len(entries)
            entries.append(HistoryEntry("tool", tool=name, arguments=_arguments(item["arguments"])))
        elif kind == "function_call_output":
            index = calls.get(str(item.get("call_id")), -1)
            if index >= 0:
                entry = entries[index]
                entries[index] = HistoryEntry(
                    "tool", tool=entry.tool, arguments=entry.arguments, output=str(item["output"])
                )
        elif role in ("user", "assistant"):
            entries.append(HistoryEntry(str(role), text=_text(item.get("content"))))
    return [e for e in entries if e.role != "assistant" or e.text]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
