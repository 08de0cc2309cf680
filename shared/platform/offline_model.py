"""A deterministic, network-free model that implements the Agents SDK `Model` interface.

It is the embedded default: it answers, calls a tool when the input asks for what the tool
does, hands off when a handoff's description matches the input, remembers facts the user
stated earlier in the thread ("my name is Ada" → "what is my name?"), and streams its answer
as Responses API events. Its rules, in order, for each call:

1. If a tool of this agent already ran since the user's last message, answer with its output.
2. If the message says "use <tool name>" and the agent has that tool (a client-supplied
   function tool of the OpenAI APIs, or its own) whose arguments can be filled (as in 3),
   call it.
3. If a tool can be filled from the user's message (every required argument found: a string
   argument with a JSON-schema `pattern` takes the first match, a number the first number) and
   its name or description shares a word with the message or a pattern matched, call it.
4. If no handoff happened since the user's last message and a handoff's description shares a
   word with the message, hand off (the best-scoring one; ties go to the first listed).
5. Otherwise answer: recall a stated fact, or acknowledge the message and what came before
   ("what are your instructions?" is answered with the agent's system instructions, so
   dynamic instructions can be seen at work).

How the answer is shaped follows the agent's settings, as a real model's would:

- an agent with a structured output (`output_type`) gets a JSON object filled from the
  conversation instead of text: per property, a string with a `pattern` takes its first match,
  an `enum` the first value mentioned (else its first), a number the next number, a boolean
  whether its name appears, a list `[]`, an optional field null, any other string the text
  answer; a nested object it cannot fill (a `$ref`) ends the run with the SDK's error;
- `ModelSettings.tool_choice="none"` skips rules 2 and 3 (no tool calls); `max_tokens` cuts the
  text answer to that many words (a word counts as a token here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from agents import Handoff, Model, ModelProvider, ModelResponse, ModelSettings, ModelTracing, Tool
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.tool import FunctionTool
from agents.tracing import generation_span
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

OFFLINE_MODEL_NAME = "ascent-offline-1"

_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# "my name is Ada", "my favourite color is blue": a key of one or two words.
_FACT = re.compile(r"\bmy ([a-z]+(?: [a-z]+)?) is ([^.,!?\n]+)", re.IGNORECASE)
_USE = re.compile(r"\buse ([A-Za-z0-9_-]{1,64})")
_QUESTION = re.compile(r"\bwhat(?:'s| is) my ([a-z]+(?: [a-z]+)?)", re.IGNORECASE)
_INSTRUCTIONS = re.compile(r"\bwhat (?:are|were) your instructions\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    """about above after again also among and any are because been before being below between
    both but can could did does doing down during each few for from further get had has have
    having her here hers him his how into its just let more most need needs not now off once
    only other our out over own please same she should some such than that the their them then
    there these they this those through too under until use used uses using very was were what
    when where which while who whom why will with would you your yours returns return given
    question questions handles handle agent specialist transfer""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _keywords(text: str) -> set[str]:
    """Content words of a text, lower-cased and crudely stemmed."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOPWORDS}


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    return cast(dict[str, Any], dump(exclude_unset=True)) if callable(dump) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or []:
        part = _as_dict(part)
        if isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


@dataclass(frozen=True)
class _Transcript:
    """What the model needs from its input: user messages and what happened since the last."""

    user_messages: list[str]
    calls_since_user: list[dict[str, Any]]
    outputs_since_user: dict[str, str]

    @classmethod
    def parse(cls, items: str | list[TResponseInputItem]) -> _Transcript:
        if isinstance(items, str):
            return cls([items], [], {})
        users: list[str] = []
        calls: list[dict[str, Any]] = []
        outputs: dict[str, str] = {}
        for raw in items:
            item = _as_dict(raw)
            kind = item.get("type", "message")
            if kind == "message" and item.get("role") == "user":
                users.append(_text_of(item.get("content")))
                calls, outputs = [], {}
            elif kind == "function_call":
                calls.append(item)
            elif kind == "function_call_output":
                output = item.get("output")
                # An MCP tool's output is a list of content parts: its text is the answer.
                text = _text_of(output) if isinstance(output, list) else None
                outputs[str(item.get("call_id"))] = (
                    output if isinstance(output, str) else text or json.dumps(output)
                )
        return cls(users, calls, outputs)

    @property
    def last_user(self) -> str:
        return self.user_messages[-1] if self.user_messages else ""


def _fill_arguments(schema: Mapping[str, Any], text: str) -> dict[str, Any] | None:
    """Fill a tool's arguments from text; None when a required argument cannot be found."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", properties.keys()))
    # Numeric arguments take the numbers of the text in order ("refund 40 after 12 days").
    numbers = iter(_NUMBER.findall(text))
    args: dict[str, Any] = {}
    for name, prop in properties.items():
        value: Any = None
        kind = prop.get("type")
        if "pattern" in prop:
            match = re.search(prop["pattern"].lstrip("^").rstrip("$"), text)
            value = match.group(0).strip() if match else None
        elif "enum" in prop:
            value = next((v for v in prop["enum"] if str(v).lower() in text.lower()), None)
        elif kind in ("integer", "number"):
            found = next(numbers, None)
            if found is not None:
                value = int(float(found)) if kind == "integer" else float(found)
        elif kind == "string":
            value = text.strip() or None
        elif kind == "boolean":
            value = False
        if value is None:
            if name in required:
                return None
            continue
        args[name] = value
    return args


def _tool_score(tool: FunctionTool, text: str) -> tuple[int, dict[str, Any]] | None:
    args = _fill_arguments(tool.params_json_schema, text)
    if args is None:
        return None
    props = tool.params_json_schema.get("properties", {})
    patterned = sum(1 for name in args if "pattern" in props.get(name, {}))
    overlap = len(_keywords(f"{tool.name.replace('_', ' ')} {tool.description}") & _keywords(text))
    score = 2 * patterned + overlap
    return (score, args) if score > 0 else None


def _answer(transcript: _Transcript, instructions: str | None = None) -> str:
    text = transcript.last_user.strip()
    if _INSTRUCTIONS.search(text):
        return f"My instructions: {instructions}" if instructions else "I have no instructions."
    facts: dict[str, str] = {}
    for earlier in transcript.user_messages[:-1]:
        for key, value in _FACT.findall(earlier):
            facts[key.lower()] = value.strip()
    question = _QUESTION.search(text)
    if question:
        key = question.group(1).lower()
        if key in facts:
            return f"Your {key} is {facts[key]}."
        return f"You haven't told me your {key} yet."
    stated = _FACT.search(text)
    if stated:
        return f"Noted: your {stated.group(1).lower()} is {stated.group(2).strip()}."
    reply = f"You said: “{text}”."
    if len(transcript.user_messages) > 1:
        reply += f" Earlier in this conversation you said: “{transcript.user_messages[-2]}”."
    return reply + " (This is Ascent's offline model; configure MODEL_PROVIDER for a real one.)"


def _structured_value(
    name: str, prop: Mapping[str, Any], text: str, answer: str, numbers: Iterator[str]
) -> Any:
    """One property of a structured output, filled by the rules in the module docstring."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        concrete = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
        if len(concrete) < len(options) or not concrete:
            return None
        prop = concrete[0]
    kind = prop.get("type")
    if "pattern" in prop:
        match = re.search(str(prop["pattern"]).lstrip("^").rstrip("$"), text)
        return match.group(0).strip() if match else ""
    if "enum" in prop:
        values = list(prop["enum"])
        return next((v for v in values if str(v).lower() in text.lower()), values[0])
    if kind in ("integer", "number"):
        found = next(numbers, None)
        number = float(found) if found is not None else 0.0
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return name.replace("_", " ").lower() in text.lower()
    if kind == "array":
        return []
    if kind == "string":
        return answer
    return {}


def _structured(schema: Mapping[str, Any], text: str, answer: str) -> str:
    """A structured output as JSON text, each property filled from the conversation."""
    numbers = iter(_NUMBER.findall(text))
    properties: Mapping[str, Any] = schema.get("properties", {})
    filled = {
        name: _structured_value(name, prop, text, answer, numbers)
        for name, prop in properties.items()
    }
    return json.dumps(filled)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OfflineModel(Model):
    """The rule-based model described in this module's docstring."""

    def __init__(self, token_delay_ms: int = 0) -> None:
        # ASCENT_OFFLINE_TOKEN_DELAY_MS: a pause before each streamed text chunk, like a real
        # model's pace, so streaming can be watched; `get_response` never waits.
        self.token_delay = token_delay_ms / 1000
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def _decide(
        self,
        input: str | list[TResponseInputItem],
        tools: Iterable[Tool],
        handoffs: Iterable[Handoff],
        *,
        instructions: str | None = None,
        settings: ModelSettings | None = None,
        output_schema: AgentOutputSchemaBase | None = None,
    ) -> TResponseOutputItem:
        transcript = _Transcript.parse(input)
        text = transcript.last_user
        settings = settings or ModelSettings()
        structured = (
            output_schema.json_schema()
            if output_schema is not None and not output_schema.is_plain_text()
            else None
        )

        def say(answer: str, source: str) -> TResponseOutputItem:
            if structured is not None:
                return _message(_structured(structured, source, answer), seed)
            if settings.max_tokens is not None:
                answer = " ".join(answer.split()[: settings.max_tokens])
            return _message(answer, seed)

        may_call = settings.tool_choice != "none"
        function_tools = [t for t in tools if isinstance(t, FunctionTool) and may_call]
        tool_names = {t.name for t in function_tools}
        handoff_list = list(handoffs)
        handoff_names = {h.tool_name for h in handoff_list}
        seed = hashlib.sha256(json.dumps(input, default=str).encode()).hexdigest()[:16]

        ran = [
            (c["name"], transcript.outputs_since_user[c["call_id"]])
            for c in transcript.calls_since_user
            if c.get("name") in tool_names and c.get("call_id") in transcript.outputs_since_user
        ]
        if ran:
            outputs = " ".join(output for _, output in ran)
            return say(outputs, f"{outputs} {text}")

        named = _USE.search(text)
        chosen = next((t for t in function_tools if named and t.name == named.group(1)), None)
        if chosen is not None:
            filled = _fill_arguments(chosen.params_json_schema, text)
            if filled is not None:
                return _function_call(chosen.name, filled, seed)

        scored = [(r[0], t, r[1]) for t in function_tools if (r := _tool_score(t, text))]
        if scored:
            best_score = max(s for s, _, _ in scored)
            _, tool, args = next(x for x in scored if x[0] == best_score)
            return _function_call(tool.name, args, seed)

        handed_off = any(
            str(c.get("name", "")).startswith("transfer_to_") or c.get("name") in handoff_names
            for c in transcript.calls_since_user
        )
        if handoff_list and not handed_off:
            words = _keywords(text)
            ranked = [(len(_keywords(h.tool_description) & words), h) for h in handoff_list]
            best = max(score for score, _ in ranked)
            if best > 0:
                target = next(h for score, h in ranked if score == best)
                return _function_call(target.tool_name, {}, seed)

        return say(_answer(transcript, instructions), text)

    @staticmethod
    def _usage(input: str | list[TResponseInputItem], output: TResponseOutputItem) -> Usage:
        in_tokens = _estimate_tokens(json.dumps(input, default=str))
        out_tokens = _estimate_tokens(json.dumps(_as_dict(output), default=str))
        return Usage(
            requests=1,
            input_tokens=in_tokens,
            output_tokens=out_tokens,
            total_tokens=in_tokens + out_tokens,
        )

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Decide the next step from the conversation and return it whole."""
        with generation_span(model=OFFLINE_MODEL, disabled=tracing.is_disabled()) as span:
            item = self._decide(
                input,
                tools,
                handoffs,
                instructions=system_instructions,
                settings=model_settings,
                output_schema=output_schema,
            )
            usage = self._usage(input, item)
            _trace_generation(span.span_data, tracing, input, item, usage)
        return ModelResponse(output=[item], usage=usage, response_id=f"resp_{item.id}")

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Decide the next step and stream it as Responses API events (text word by word)."""
        # A model span like the SDK's own models make (a custom model must make its own).
        with generation_span(model=OFFLINE_MODEL, disabled=tracing.is_disabled()) as span:
            item = self._decide(
                input,
                tools,
                handoffs,
                instructions=system_instructions,
                settings=model_settings,
                output_schema=output_schema,
            )
            usage = self._usage(input, item)
            for event in _stream_events(item, usage):
                if self.token_delay and isinstance(event, ResponseTextDeltaEvent):
                    await self.sleep(self.token_delay)
                yield event
            _trace_generation(span.span_data, tracing, input, item, usage)


OFFLINE_MODEL = "ascent-offline"


def _trace_generation(
    data: Any,
    tracing: ModelTracing,
    input: str | list[TResponseInputItem],
    item: TResponseOutputItem,
    usage: Usage,
) -> None:
    """Fill the model span: usage always, the messages only when the run includes data."""
    data.usage = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if tracing.include_data():
        given = [{"role": "user", "content": input}] if isinstance(input, str) else input
        data.input = list(given)
        data.output = [item.model_dump()]


def _message(text: str, seed: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{seed}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
    )


def _function_call(name: str, args: dict[str, Any], seed: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{seed}",
        call_id=f"call_{seed}",
        type="function_call",
        name=name,
        arguments=json.dumps(args, separators=(",", ":")),
        status="completed",
    )


def _response(item: TResponseOutputItem | None, usage: Usage | None) -> Response:
    response_usage = None
    if usage is not None:
        response_usage = ResponseUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )
    return Response(
        id=f"resp_{getattr(item, 'id', 'offline')}",
        created_at=0,
        model=OFFLINE_MODEL_NAME,
        object="response",
        output=[item] if item is not None else [],
        tool_choice="auto",
        tools=[],
        parallel_tool_calls=False,
        status="completed" if item is not None else "in_progress",
        usage=response_usage,
    )


def _stream_events(item: TResponseOutputItem, usage: Usage) -> list[TResponseStreamEvent]:
    """The Responses API event sequence for one output item, as a real provider sends it."""
    seq = iter(range(1_000_000))
    events: list[Any] = [
        ResponseCreatedEvent(
            type="response.created", response=_response(None, None), sequence_number=next(seq)
        )
    ]
    if isinstance(item, ResponseOutputMessage):
        text = _text_of(item.content)
        pending = item.model_copy(update={"status": "in_progress", "content": []})
        empty = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        events += [
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=pending,
                output_index=0,
                sequence_number=next(seq),
            ),
            ResponseContentPartAddedEvent(
                type="response.content_part.added",
                item_id=item.id,
                output_index=0,
                content_index=0,
                part=empty,
                sequence_number=next(seq),
            ),
        ]
        for chunk in re.findall(r"\S+\s*|\s+", text):
            events.append(
                ResponseTextDeltaEvent(
                    type="response.output_text.delta",
                    item_id=item.id,
                    output_index=0,
                    content_index=0,
                    delta=chunk,
                    logprobs=[],
                    sequence_number=next(seq),
                )
            )
        events += [
            ResponseTextDoneEvent(
                type="response.output_text.done",
                item_id=item.id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
                sequence_number=next(seq),
            ),
            ResponseContentPartDoneEvent(
                type="response.content_part.done",
                item_id=item.id,
                output_index=0,
                content_index=0,
                part=item.content[0],
                sequence_number=next(seq),
            ),
        ]
    elif isinstance(item, ResponseFunctionToolCall):
        item_id = item.id or item.call_id
        events += [
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=item.model_copy(update={"status": "in_progress", "arguments": ""}),
                output_index=0,
                sequence_number=next(seq),
            ),
            ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta",
                item_id=item_id,
                output_index=0,
                delta=item.arguments,
                sequence_number=next(seq),
            ),
            ResponseFunctionCallArgumentsDoneEvent(
                type="response.function_call_arguments.done",
                item_id=item_id,
                name=item.name,
                output_index=0,
                arguments=item.arguments,
                sequence_number=next(seq),
            ),
        ]
    events += [
        ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=0, sequence_number=next(seq)
        ),
        ResponseCompletedEvent(
            type="response.completed", response=_response(item, usage), sequence_number=next(seq)
        ),
    ]
    return cast(list[TResponseStreamEvent], events)


class OfflineModelProvider(ModelProvider):
    """Hands every agent the offline model, whatever model name it asks for."""

    def __init__(self, token_delay_ms: int = 0) -> None:
        self._model = OfflineModel(token_delay_ms)

    def get_model(self, model_name: str | None) -> Model:
        """Return the shared offline model."""
        return self._model
