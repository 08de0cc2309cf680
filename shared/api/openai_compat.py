"""The OpenAI-compatible API: catalog agents as models, chat completions as agent runs.

Clients point the official `openai` SDK (or any chat UI) at `http://<host>/api/v1` with an
Ascent API key as `api_key`; the SDK sends it as `Authorization: Bearer`, which is what Ascent
authenticates. `model` names a catalog agent (`GET /v1/models` lists them).

Which conversation a request continues, first match wins:

1. `X-Ascent-Thread-Id: <uuid>` names an existing thread the caller sees (404 if none; within
   a tenant a user sees their own and granted threads, shared/security/thread_access.py).
2. `user` (the OpenAI end-user field) maps to one thread per (tenant, user): its id is a
   UUIDv5 of both, so the thread is found again on any instance without a lookup table, and
   created on first use. A signed-in user (bearer token) gets threads of their own: the id
   also derives from their user id, so two users sending the same `user` never share a
   conversation. One `user` is one conversation; a chat UI that wants several
   conversations per person sends a distinct `user` per conversation (e.g. `ada:chat-42`) or
   the thread header.
3. Neither: the request is stateless. The whole `messages` list is the run's input and
   nothing is remembered: the run's scratch thread is deleted when it ends (the run stays,
   with no thread, like an Agent Protocol stateless run).

With a thread (1 or 2), history lives on the server, so only the LAST user message of
`messages` is new input; earlier messages the client resends are ignored. Every answer names
the run in `X-Ascent-Run-Id` and, with a thread, the thread in `X-Ascent-Thread-Id`.

Every request is a run of the one run engine (shared/runs/), executed on the instance that
received it, so it behaves as on every other API:

- Human approval. A write or spend tool (billing's `issue_refund`), or an answer an output
  guardrail holds for review, pauses the run. The completion is then an assistant message
  saying what waits for approval, with `finish_reason: "stop"`, and the extension field
  `ascent: {"status": "interrupted", "run_id", "thread_id", "reviews": [{"review_id", "kind",
  "tool", "arguments", "reason"}]}` (streamed: the message as deltas, `ascent` on the last
  chunk). Decide with `POST /api/reviews/{review_id}/decision`; the run then continues in the
  background, and `GET /api/runs/{run_id}/wait` returns its answer. Until then the thread is
  held by the paused run: a new message on it gets 409.
- Every completion carries `ascent: {"run_id", "thread_id", "status"}`; unknown fields are
  ignored by OpenAI clients.

Streaming (`stream: true`) answers `text/event-stream`: `data: {chat.completion.chunk}` lines
(first the assistant role, then text deltas, then `finish_reason: "stop"`, then a usage chunk
when `stream_options.include_usage`), then `data: [DONE]`. The run starts before the response
does, so failures before the first token are ordinary problem responses; a failure after it is
a final `data: {"error": {...}}` event, which the `openai` SDK raises as `APIError`. The
streamed text is every assistant text delta of the run, the non-streamed content is the run's
final output; they are equal unless an agent writes text in a turn that also calls a tool.

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}` shape
(shared/api/openai_errors.py) with the right status (400 bad JSON, invalid fields or tripped
guardrail, 401 bad key, 404 unknown model or thread, 409 thread busy, 413 too large, 502 model
failure, 503 instance full), so the SDK raises its matching `APIStatusError` subclass
(`BadRequestError`, `AuthenticationError`, `NotFoundError`, ...).

Client tools. Function `tools` the request supplies are given to the agent
(shared/runs/client_tools.py): when the model calls one, the run stops before executing it and
the completion is the assistant message with `tool_calls` and `finish_reason: "tool_calls"`
(streamed: one chunk carrying the calls). The client runs them and sends the conversation back
with `role: "tool"` messages (`tool_call_id`); with a thread, the trailing tool messages are the
new input, and the run continues from the calls kept in the thread. Send the same `tools` again
so the model still knows them. Sampling parameters (`temperature`, `max_tokens`, ...) are
accepted and ignored: the agent's own configuration decides. Content is text only. Answers are
built and validated with the `openai` package's own types (`ChatCompletion`,
`ChatCompletionChunk`), so the wire format follows OpenAI's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast

from agents.items import TResponseInputItem
from fastapi import Response
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types import Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    Function as CalledFunctionOut,
)
from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, select

from shared.agents import CATALOG, configured
from shared.api import sse
from shared.api.openai_errors import error_body, status_of
from shared.api.responses import check_parameters
from shared.api.simple import raise_for_failure
from shared.core.errors import AscentError, NotFound
from shared.core.settings import get_settings
from shared.db.assistant_models import Assistant
from shared.db.engine import db_session
from shared.db.models import new_id
from shared.runs import client_tools, service
from shared.runs.dispatch import spawn
from shared.runs.engine import Outcome
from shared.runs.messages import token_of
from shared.runs.records import NewRun
from shared.security import thread_access
from shared.security.auth import Principal

log = logging.getLogger(__name__)

Json = dict[str, Any]
THREAD_HEADER = "X-Ascent-Thread-Id"
RUN_HEADER = "X-Ascent-Run-Id"
OWNER = "ascent"
# Namespace of the UUIDv5 thread ids derived from (tenant, user); never change it.
USER_THREADS = uuid.UUID("6f1c2a3e-9b1d-5c7e-8a4f-0d2b3c4e5f60")
MAX_USER_CHARS = 256


# --- request ------------------------------------------------------------------------------


class TextPart(BaseModel):
    """A text part of a message's content (image and audio parts are not supported)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class CalledFunction(BaseModel):
    """The function of an assistant message's tool call."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    arguments: str


class ToolCallIn(BaseModel):
    """A tool call of an earlier assistant message, as the client sends it back."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(BaseModel):
    """One message of `messages`: text, an assistant's tool calls, or a tool's result."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _check_tool_message(self) -> ChatMessage:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs its tool_call_id")
        return self

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatFunction(BaseModel):
    """The function of a client-supplied tool."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = Field(None, max_length=4000)
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_parameters(self) -> ChatFunction:
        check_parameters(self.parameters)
        return self


class ChatTool(BaseModel):
    """A function the client executes (`tools: [{"type": "function", "function": {...}}]`)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: ChatFunction


class StreamOptions(BaseModel):
    """`stream_options`: whether to end the stream with a usage chunk."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """Body of `POST /v1/chat/completions` (OpenAI's shape; unknown parameters are ignored)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "assistant",
                    "messages": [{"role": "user", "content": "Hi, my name is Ada"}],
                    "user": "ada",
                },
                {
                    "model": "triage",
                    "messages": [{"role": "user", "content": "Hello"}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            ]
        },
    )

    model: str = Field(min_length=1, max_length=100, description="A catalog agent's name.")
    messages: list[ChatMessage] = Field(
        min_length=1,
        description=(
            "The conversation. With a thread (`user` or the thread header) only the last user "
            "message is new input; otherwise all of it is the run's input."
        ),
    )
    stream: bool | None = Field(None, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    user: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_USER_CHARS,
        description="An end-user id; each (tenant, user) has one server-side conversation.",
    )
    n: int | None = Field(None, ge=1, le=1, description="Only one choice is supported.")
    tools: list[ChatTool] | None = Field(
        None, max_length=64, description="Functions the client executes (type `function`)."
    )

    @model_validator(mode="after")
    def _check_messages(self) -> ChatCompletionRequest:
        limit = get_settings().max_input_chars
        for message in self.messages:
            text = message.text
            if len(text) > limit:
                raise ValueError(f"a message may be at most {limit} characters")
            strings = [text, message.tool_call_id or ""]
            strings += [c.id + c.function.arguments for c in message.tool_calls or []]
            if any("\x00" in s for s in strings):
                raise ValueError("messages must not contain NUL characters")
        if not self.tool_results and not self.last_user_text.strip():
            raise ValueError("messages must end with a non-blank user message or tool results")
        if self.user is not None and ("\x00" in self.user or not self.user.strip()):
            raise ValueError("user must be non-blank and free of NUL characters")
        return self

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (the new input when a thread holds the history)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def tool_results(self) -> list[ChatMessage]:
        """The tool messages ending the conversation (the results of the client's tools)."""
        trailing: list[ChatMessage] = []
        for message in reversed(self.messages):
            if message.role != "tool":
                break
            trailing.append(message)
        return list(reversed(trailing))

    def client_tools(self) -> list[Json]:
        """The request's tools as the run's `config.client_tools`."""
        return [
            {"name": t.function.name, "description": t.function.description}
            | {"parameters": t.function.parameters}
            for t in self.tools or []
        ]

    def new_items(self) -> list[Json]:
        """The new input when a thread holds the history: the trailing tool results, else the
        last user message."""
        results = self.tool_results
        if results:
            return [_item_of(m)[0] for m in results]
        return [{"type": "message", "role": "user", "content": self.last_user_text}]

    def input_items(self) -> list[TResponseInputItem]:
        """The whole conversation as Responses input items, for a stateless run."""
        items: list[Any] = []
        for message in self.messages:
            items += _item_of(message)
        return cast(list[TResponseInputItem], items)


def _item_of(message: ChatMessage) -> list[Json]:
    """A chat message as SDK input items (an assistant's tool calls become function calls)."""
    if message.role == "tool":
        output = message.text
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": output}]
    items: list[Json] = []
    if message.text or not message.tool_calls:
        items.append({"type": "message", "role": message.role, "content": message.text})
    for call in message.tool_calls or []:
        items.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
            }
        )
    return items


# --- responses ----------------------------------------------------------------------------


def model_card(name: str) -> Model:
    """A catalog agent as an OpenAI model (the `openai` package's own `Model` type)."""
    return Model(id=name, object="model", created=0, owned_by=OWNER)


class ModelList(BaseModel):
    """Body of `GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[Model]


# --- models -------------------------------------------------------------------------------


# How many of a tenant's assistants `GET /v1/models` lists after the catalog agents.
MAX_LISTED_ASSISTANTS = 1000


async def list_models(tenant_id: str) -> ModelList:
    """Every catalog agent, then the tenant's assistants (by id), as OpenAI models."""
    stmt = (
        select(Assistant.id)
        .where(col(Assistant.tenant_id) == tenant_id)
        .order_by(col(Assistant.created_at), col(Assistant.id))
        .limit(MAX_LISTED_ASSISTANTS)
    )
    async with db_session() as db:
        assistants = list((await db.exec(stmt)).all())
    return ModelList(data=[model_card(name) for name in [*CATALOG, *assistants]])


async def get_model_card(tenant_id: str, name: str) -> Model:
    """A catalog agent or one of the tenant's assistants as an OpenAI model, or NotFound."""
    await configured.resolve(tenant_id, name)
    return model_card(name)


# --- threads ------------------------------------------------------------------------------


def user_thread_id(tenant_id: str, user: str, *, principal_user: str | None = None) -> str:
    """The id of the thread that holds (tenant, user)'s conversation: a UUIDv5 of both, and of
    the signed-in user when there is one."""
    if principal_user is None:
        return str(uuid.uuid5(USER_THREADS, f"{tenant_id}\n{user}"))
    # A JSON array never equals the "<tenant>\n<user>" form (tenant ids never start with "["),
    # and quoting keeps user ids and `user` values containing newlines apart.
    return str(uuid.uuid5(USER_THREADS, json.dumps([tenant_id, principal_user, user])))


@dataclass(frozen=True)
class ThreadChoice:
    """The thread a request continues: an existing one (the header), a per-user one created on
    first use, or none (stateless)."""

    thread_id: str | None
    create: bool = False
    user: str | None = None


def resolve_thread(
    *, principal: Principal, thread_header: str | None, user: str | None
) -> ThreadChoice:
    """Which thread a request continues (see the module docstring). Whether the caller sees it
    is checked when the run is created, in the same transaction (404 like a missing thread)."""
    if thread_header is not None and thread_header.strip():
        raw = thread_header.strip()
        try:
            return ThreadChoice(str(uuid.UUID(raw)))
        except ValueError:
            raise NotFound(f"No thread {raw[:64]!r}.") from None
    if user is None:
        return ThreadChoice(None)
    thread_id = user_thread_id(principal.tenant_id, user, principal_user=principal.user_id)
    return ThreadChoice(thread_id, create=True, user=user)


# --- completions --------------------------------------------------------------------------


def _usage(usage: dict[str, int]) -> CompletionUsage:
    """The run's usage in OpenAI's terms."""
    return CompletionUsage(
        prompt_tokens=usage.get("input_tokens", 0),
        completion_tokens=usage.get("output_tokens", 0),
        total_tokens=usage.get("total_tokens", 0),
    )


def _headers(thread_id: str | None, run_id: str) -> dict[str, str]:
    headers = {RUN_HEADER: run_id}
    if thread_id is not None:
        headers[THREAD_HEADER] = thread_id
    return headers


def pending_review_text(outcome: Outcome) -> str:
    """The assistant message of a run paused for a human: what waits, and where to decide it."""
    parts = []
    for review in outcome.reviews:
        if review["kind"] == "tool":
            args = json.dumps(review.get("arguments") or {}, separators=(",", ":"))
            parts.append(f"{review.get('tool')} {args} (review {review['review_id']})")
        else:
            parts.append(f"the answer (review {review['review_id']})")
    return (
        "This request is waiting for a human reviewer's approval before it can go on: "
        + "; ".join(parts)
        + ". The answer follows once it is decided."
    )


def extension(outcome: Outcome) -> Json:
    """The `ascent` field of a completion: the run, and the reviews a paused run waits for."""
    body: Json = {
        "run_id": outcome.run_id,
        "thread_id": outcome.thread_id,
        "status": outcome.status,
    }
    if outcome.paused:
        body["reviews"] = [
            {k: r.get(k) for k in ("review_id", "kind", "tool", "arguments", "reason")}
            for r in outcome.reviews
        ]
    if outcome.cancelled:
        body["cancel_reason"] = "cancelled"
    return body


def answer_text(outcome: Outcome) -> str:
    """The assistant content a finished run answers with (never "None", never empty-handed)."""
    if outcome.paused:
        return pending_review_text(outcome)
    return outcome.output


async def chat_completions(
    *, principal: Principal, body: ChatCompletionRequest, thread_header: str | None
) -> Response:
    """Answer a chat completions request: JSON, or SSE when `stream` is true."""
    # A catalog agent or the tenant's assistant; an unknown model is 404 before any write.
    await configured.resolve(principal.tenant_id, body.model)
    choice = resolve_thread(principal=principal, thread_header=thread_header, user=body.user)
    thread_id = choice.thread_id
    stateless = thread_id is None
    tools = body.client_tools()
    new = NewRun(
        run_id=new_id(),
        tenant_id=principal.tenant_id,
        agent=body.model,
        input_text=body.last_user_text,
        input_items=cast(list[Json], body.input_items()) if stateless else body.new_items(),
        config={client_tools.CLIENT_TOOLS: tools} if tools else {},
        entry_point="openai",
        user_id=principal.user_id or principal.key_id,
        thread_id=thread_id,
        thread_visible=thread_access.thread_visible(principal),
        create_missing_thread=choice.create,
        new_thread_owner=thread_access.owner_for(principal),
        new_thread_metadata=(
            {"source": "openai", "stateless": True}
            if stateless
            else {"openai_user": choice.user}
            if choice.user is not None
            else None
        ),
        # A stateless request remembers nothing: its scratch thread goes when the run ends.
        on_completion="delete" if stateless else "keep",
    )
    handle = await service.run_here(new, principal=principal)
    if body.stream:
        return await _stream_response(handle, body)
    outcome = await handle.outcome()
    raise_for_failure(outcome)
    calls = [_tool_call(c) for c in outcome.tool_calls]
    message = ChatCompletionMessage(
        role="assistant",
        content=answer_text(outcome) if not calls else (outcome.output or None),
        tool_calls=cast(Any, calls) or None,
    )
    completion = ChatCompletion(
        id=f"chatcmpl-{outcome.run_id}",
        object="chat.completion",
        created=int(time.time()),
        model=body.model,
        choices=[Choice(index=0, message=message, finish_reason="tool_calls" if calls else "stop")],
        usage=_usage(outcome.usage),
        ascent=extension(outcome),
    )
    return JSONResponse(
        completion.model_dump(mode="json"), headers=_headers(outcome.thread_id, outcome.run_id)
    )


def _tool_call(call: Json) -> ChatCompletionMessageFunctionToolCall:
    """A client tool call the run stopped at, as a chat `tool_calls` entry."""
    return ChatCompletionMessageFunctionToolCall(
        id=str(call["call_id"]),
        type="function",
        function=CalledFunctionOut(name=str(call["name"]), arguments=str(call["arguments"])),
    )


async def _stream_response(handle: service.Handle, body: ChatCompletionRequest) -> Response:
    """SSE chunks of the run's text deltas, as the engine emits them on this instance."""
    run = handle.run
    events = handle.events(after=1).__aiter__()
    # Wait for the first token (or the end) so a failure before any output is an ordinary
    # problem response, not an SSE error event.
    first: str | None = None
    ended = False
    async for row in events:
        if row is None:
            continue
        token = token_of(row[1], row[2])
        if token is not None:
            first = token
            break
        if row[1] == "end":
            ended = True
            break
    if ended:
        raise_for_failure(await handle.outcome())

    created = int(time.time())
    chunk_id = f"chatcmpl-{run.id}"

    def chunk(delta: ChoiceDelta) -> bytes:
        return sse.encode(
            ChatCompletionChunk(
                id=chunk_id,
                object="chat.completion.chunk",
                created=created,
                model=body.model,
                choices=[ChunkChoice(index=0, delta=delta)],
            )
        )

    async def stream() -> AsyncIterator[bytes]:
        finished = False
        try:
            yield chunk(ChoiceDelta(role="assistant", content=""))
            if first is not None:
                yield chunk(ChoiceDelta(content=first))
            if not ended:
                async for row in events:
                    if row is None:
                        yield sse.KEEPALIVE
                        continue
                    token = token_of(row[1], row[2])
                    if token is not None:
                        yield chunk(ChoiceDelta(content=token))
                    if row[1] == "end":
                        break
            outcome = await handle.outcome()
            finished = True
            if outcome.status in ("error", "timeout"):
                try:
                    raise_for_failure(outcome)
                except AscentError as error:
                    yield sse.encode(error_body(status_of(error), error.detail, error.code))
                return
            if outcome.paused:
                yield chunk(ChoiceDelta(content=pending_review_text(outcome)))
            calls = [
                ChoiceDeltaToolCall(
                    index=index,
                    id=str(call["call_id"]),
                    type="function",
                    function=ChoiceDeltaToolCallFunction(
                        name=str(call["name"]), arguments=str(call["arguments"])
                    ),
                )
                for index, call in enumerate(outcome.tool_calls)
            ]
            if calls:
                yield chunk(ChoiceDelta(tool_calls=calls))
            final = ChatCompletionChunk(
                id=chunk_id,
                object="chat.completion.chunk",
                created=created,
                model=body.model,
                choices=[
                    ChunkChoice(
                        index=0,
                        delta=ChoiceDelta(),
                        finish_reason="tool_calls" if calls else "stop",
                    )
                ],
                ascent=extension(outcome),
            )
            yield sse.encode(final)
            if body.stream_options is not None and body.stream_options.include_usage:
                yield sse.encode(
                    ChatCompletionChunk(
                        id=chunk_id,
                        object="chat.completion.chunk",
                        created=created,
                        model=body.model,
                        choices=[],
                        usage=_usage(outcome.usage),
                    )
                )
            yield sse.DONE
        finally:
            if not finished:
                # The client went away: stop the run (from a task of its own: this one may not
                # await any more).
                spawn(service.cancel(run.tenant_id, run.id))

    return StreamingResponse(
        stream(),
        media_type=sse.MEDIA_TYPE,
        headers={
            **_headers(None if run.on_completion == "delete" else run.thread_id, run.id),
            "Cache-Control": "no-cache",
        },
    )
