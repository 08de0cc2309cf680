"""The OpenAI-compatible API: catalog agents as models, chat completions as agent runs.

Clients point the official `openai` SDK (or any chat UI) at `http://<host>/api/v1` with an
Ascent API key as `api_key`; the SDK sends it as `Authorization: Bearer`, which is what Ascent
authenticates. `model` names a catalog agent (`GET /v1/models` lists them).

Which conversation a request continues, first match wins:

1. `X-Ascent-Thread-Id: <uuid>` names an existing thread the caller sees (404 if none; within
   a tenant a user sees their own and granted threads, shared/thread_access.py).
2. `user` (the OpenAI end-user field) maps to one thread per (tenant, user): its id is a
   UUIDv5 of both, so the thread is found again on any instance without a lookup table, and
   created on first use. A signed-in user (bearer token) gets threads of their own: the id
   also derives from their user id, so two users sending the same `user` never share a
   conversation. One `user` is one conversation; a chat UI that wants several
   conversations per person sends a distinct `user` per conversation (e.g. `ada:chat-42`) or
   the thread header.
3. Neither: the request is stateless. The whole `messages` list is the run's input, nothing is
   remembered, and the run is recorded on a fresh thread of its own.

With a thread (1 or 2), history lives on the server, so only the LAST user message of
`messages` is new input; earlier messages the client resends are ignored. Every answer names
the thread and run in `X-Ascent-Thread-Id` and `X-Ascent-Run-Id`.

Streaming (`stream: true`) answers `text/event-stream`: `data: {chat.completion.chunk}` lines
(first the assistant role, then text deltas, then `finish_reason: "stop"`, then a usage chunk
when `stream_options.include_usage`), then `data: [DONE]`. The run starts before the response
does, so failures before the first token are ordinary problem responses; a failure after it is
a final `data: {"error": {...}}` event, which the `openai` SDK raises as `APIError`. The
streamed text is every assistant text delta of the run, the non-streamed content is the run's
final output; they are equal unless an agent writes text in a turn that also calls a tool.

Errors are not OpenAI's `{"error": ...}` shape but Ascent's `application/problem+json` with the
right status (400 bad JSON, 401 bad key, 404 unknown model or thread, 413 too large, 422
invalid fields or tripped guardrail, 502 model failure), so the SDK raises its matching
`APIStatusError` subclass (`BadRequestError`, `AuthenticationError`, `NotFoundError`, ...).
Sampling parameters (`temperature`, `max_tokens`, tools, ...) are accepted and ignored: the
agent's own configuration decides. Content is text only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    Runner,
)
from agents.items import TResponseInputItem
from agents.memory import Session
from fastapi import Response
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.responses import ResponseTextDeltaEvent
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import IntegrityError

from shared import thread_access
from shared.agents import CATALOG, get_agent
from shared.agents.memory_tools import MemoryContext
from shared.auth import Principal
from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import Run
from shared.errors import AscentError, GuardrailTripped, NotFound, UpstreamModelError
from shared.ratelimit import check_token_budget, record_tokens
from shared.runs import (
    REFUSED_INPUT,
    conversation_session,
    forget_refused_input,
    run_agent,
    run_config,
)
from shared.settings import get_settings

log = logging.getLogger(__name__)

THREAD_HEADER = "X-Ascent-Thread-Id"
RUN_HEADER = "X-Ascent-Run-Id"
OWNER = "ascent"
# Namespace of the UUIDv5 thread ids derived from (tenant, user); never change it.
USER_THREADS = uuid.UUID("6f1c2a3e-9b1d-5c7e-8a4f-0d2b3c4e5f60")
MAX_USER_CHARS = 256

# Fire-and-forget bookkeeping tasks (recording an abandoned stream) must stay referenced.
_background: set[asyncio.Task[None]] = set()


# --- request ------------------------------------------------------------------------------


class TextPart(BaseModel):
    """A text part of a message's content (image and audio parts are not supported)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of `messages`; tool messages and tool calls are not supported."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


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

    @model_validator(mode="after")
    def _check_messages(self) -> ChatCompletionRequest:
        limit = get_settings().max_input_chars
        for message in self.messages:
            text = message.text
            if len(text) > limit:
                raise ValueError(f"a message may be at most {limit} characters")
            if "\x00" in text:
                raise ValueError("messages must not contain NUL characters")
        if not self.last_user_text.strip():
            raise ValueError("messages must end with a non-blank user message")
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

    def input_items(self) -> list[TResponseInputItem]:
        """The whole conversation as Responses input items, for a stateless run."""
        items: list[TResponseInputItem] = []
        for message in self.messages:
            item: Any = {"type": "message", "role": message.role, "content": message.text}
            items.append(item)
        return items


# --- responses ----------------------------------------------------------------------------


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`: a catalog agent presented as an OpenAI model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = OWNER


class ModelList(BaseModel):
    """Body of `GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class CompletionUsage(BaseModel):
    """Token usage of a completion, summed over every model call of the run."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The answer of a non-streamed completion."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    """The single choice of a non-streamed completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """Body of a non-streamed `POST /v1/chat/completions`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    """What a stream chunk adds to the answer."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The single choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed `POST /v1/chat/completions`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


# --- models -------------------------------------------------------------------------------


def list_models() -> ModelList:
    """Every catalog agent as an OpenAI model."""
    return ModelList(data=[ModelCard(id=name) for name in CATALOG])


def get_model_card(name: str) -> ModelCard:
    """The catalog agent `name` as an OpenAI model, or NotFound."""
    if name not in CATALOG:
        raise NotFound(f"No model (agent) named {name!r}.")
    return ModelCard(id=name)


# --- threads ------------------------------------------------------------------------------


def user_thread_id(tenant_id: str, user: str, *, principal_user: str | None = None) -> str:
    """The id of the thread that holds (tenant, user)'s conversation: a UUIDv5 of both, and of
    the signed-in user when there is one."""
    if principal_user is None:
        return str(uuid.uuid5(USER_THREADS, f"{tenant_id}\n{user}"))
    # A JSON array never equals the "<tenant>\n<user>" form (tenant ids never start with "["),
    # and quoting keeps user ids and `user` values containing newlines apart.
    return str(uuid.uuid5(USER_THREADS, json.dumps([tenant_id, principal_user, user])))


async def resolve_thread(
    *, principal: Principal, thread_header: str | None, user: str | None
) -> str | None:
    """The thread a request continues (see the module docstring), or None when stateless."""
    tenant = principal.tenant_id
    if thread_header is not None and thread_header.strip():
        raw = thread_header.strip()
        try:
            thread_id = str(uuid.UUID(raw))
        except ValueError:
            raise NotFound(f"No thread {raw[:64]!r}.") from None
        async with db_session() as db:
            if await thread_access.find_thread(db, principal, thread_id) is None:
                raise NotFound(f"No thread {thread_id!r}.")
        return thread_id
    if user is None:
        return None
    thread_id = user_thread_id(tenant, user, principal_user=principal.user_id)
    async with db_session() as db:
        existing = await repo.get_thread(session=db, tenant_id=tenant, thread_id=thread_id)
        if existing is not None:
            if not await thread_access.can_see(db, principal, existing):
                raise NotFound(f"No thread {thread_id!r}.")
            return thread_id
        try:
            await repo.create_thread(
                session=db,
                tenant_id=tenant,
                thread_id=thread_id,
                metadata={"openai_user": user},
                owner_id=thread_access.owner_for(principal),
            )
            await db.commit()
        except IntegrityError:
            await db.rollback()  # a concurrent first request created it: that is the one
            if await thread_access.find_thread(db, principal, thread_id) is None:
                raise NotFound(f"No thread {thread_id!r}.") from None
    return thread_id


# --- completions --------------------------------------------------------------------------


def _usage(input_tokens: int, output_tokens: int, total_tokens: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=input_tokens, completion_tokens=output_tokens, total_tokens=total_tokens
    )


def _headers(thread_id: str, run_id: str) -> dict[str, str]:
    return {THREAD_HEADER: thread_id, RUN_HEADER: run_id}


async def chat_completions(
    *, principal: Principal, body: ChatCompletionRequest, thread_header: str | None
) -> Response:
    """Answer a chat completions request: JSON, or SSE when `stream` is true."""
    get_agent(body.model)  # unknown model: 404 before anything is written
    await check_token_budget(principal.tenant_id)
    thread_id = await resolve_thread(
        principal=principal, thread_header=thread_header, user=body.user
    )
    if body.stream:
        return await _stream_response(principal=principal, body=body, thread_id=thread_id)
    created = int(time.time())
    if thread_id is not None:
        outcome = await run_agent(
            principal=principal,
            agent_name=body.model,
            input_text=body.last_user_text,
            thread_id=thread_id,
        )
        run_id, thread_id, output = outcome.run_id, outcome.thread_id, outcome.output
        usage = _usage(
            outcome.usage["input_tokens"],
            outcome.usage["output_tokens"],
            outcome.usage["total_tokens"],
        )
    else:
        run = await _StreamedRun.start(principal=principal, body=body, thread_id=None)
        async for _ in run.deltas():
            pass
        run_id, thread_id, output, usage = run.run_id, run.thread_id, run.output, run.usage
    completion = ChatCompletion(
        id=f"chatcmpl-{run_id}",
        created=created,
        model=body.model,
        choices=[Choice(message=AssistantMessage(content=output))],
        usage=usage,
    )
    return JSONResponse(completion.model_dump(mode="json"), headers=_headers(thread_id, run_id))


class _StreamedRun:
    """One recorded, streamed agent run: yields text deltas, then holds output and usage."""

    def __init__(
        self,
        *,
        agent_name: str,
        run: Run,
        thread_id: str,
        session: Session | None,
        input: str | list[TResponseInputItem],
    ) -> None:
        self.agent_name = agent_name
        self.run = run
        self.session = session
        self.input = input
        self.context = MemoryContext(run.tenant_id, run.user_id) if run.user_id else None
        self.run_id: str = run.id
        self.thread_id = thread_id
        self.output = ""
        self.usage = _usage(0, 0, 0)
        self.finished = False

    @classmethod
    async def start(
        cls, *, principal: Principal, body: ChatCompletionRequest, thread_id: str | None
    ) -> _StreamedRun:
        """Record a `running` run on the thread, or on a fresh one when stateless (None)."""
        tenant = principal.tenant_id
        async with db_session() as db:
            run_thread = thread_id
            if run_thread is None:
                thread = await repo.create_thread(
                    session=db,
                    tenant_id=tenant,
                    metadata={"source": "openai", "stateless": True},
                    owner_id=thread_access.owner_for(principal),
                )
                run_thread = thread.id
            run = await repo.create_run(
                session=db,
                tenant_id=tenant,
                thread_id=run_thread,
                agent=body.model,
                input_text=body.last_user_text,
                user_id=principal.user_id or principal.key_id,
            )
            await db.commit()
        if thread_id is None:
            return cls(
                agent_name=body.model,
                run=run,
                thread_id=run_thread,
                session=None,
                input=body.input_items(),
            )
        return cls(
            agent_name=body.model,
            run=run,
            thread_id=thread_id,
            session=conversation_session(tenant, thread_id),
            input=body.last_user_text,
        )

    async def deltas(self) -> AsyncIterator[str]:
        """Run the agent, yielding its text deltas; record the outcome however it ends."""
        agent = get_agent(self.agent_name)
        result = Runner.run_streamed(
            agent,
            self.input,
            session=self.session,
            context=self.context,
            run_config=run_config(),
            max_turns=get_settings().max_turns,
        )
        try:
            async for event in result.stream_events():
                if event.type == "raw_response_event" and isinstance(
                    event.data, ResponseTextDeltaEvent
                ):
                    yield event.data.delta
        except InputGuardrailTripwireTriggered as exc:
            name = exc.guardrail_result.guardrail.get_name()
            if self.session is not None:
                await forget_refused_input(self.session, self.input)
            self.run.input = REFUSED_INPUT
            await self._record(status="error", error=f"input guardrail tripped: {name}")
            raise GuardrailTripped(
                f"The input was refused by the {name!r} guardrail.",
                guardrail=name,
                run_id=self.run_id,
                thread_id=self.thread_id,
            ) from None
        except (ModelBehaviorError, MaxTurnsExceeded) as exc:
            await self._record(status="error", error=type(exc).__name__)
            raise UpstreamModelError(
                "The agent did not produce an answer.",
                run_id=self.run_id,
                thread_id=self.thread_id,
            ) from exc
        except Exception as exc:
            log.exception("run %s failed", self.run_id)
            await self._record(status="error", error=type(exc).__name__)
            raise UpstreamModelError(
                "The run failed.", run_id=self.run_id, thread_id=self.thread_id
            ) from exc
        except BaseException:
            # The client went away (cancellation or generator close): stop the run and record
            # it from a task of its own, since this one may not await any more.
            result.cancel()
            self._record_later(status="error", error="ClientDisconnected")
            raise
        usage = result.context_wrapper.usage
        self.output = str(result.final_output)
        self.usage = _usage(usage.input_tokens, usage.output_tokens, usage.total_tokens)
        await self._record(
            status="success",
            output=self.output,
            last_agent=result.last_agent.name,
            usage={
                "requests": int(usage.requests),
                "input_tokens": int(usage.input_tokens),
                "output_tokens": int(usage.output_tokens),
                "total_tokens": int(usage.total_tokens),
            },
        )

    async def _record(self, **outcome: Any) -> None:
        if self.finished:
            return
        self.finished = True
        tokens = int(outcome.get("usage", {}).get("total_tokens", 0))
        await record_tokens(self.run.tenant_id, tokens)
        async with db_session() as db:
            await repo.finish_run(session=db, run=self.run, **outcome)
            await db.commit()

    def _record_later(self, **outcome: Any) -> None:
        if self.finished:
            return

        async def record() -> None:
            try:
                await self._record(**outcome)
            except Exception:
                log.exception("could not record the end of run %s", self.run_id)

        task = asyncio.get_running_loop().create_task(record())
        _background.add(task)
        task.add_done_callback(_background.discard)


def _sse(payload: BaseModel | dict[str, Any] | str) -> bytes:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json()
    elif isinstance(payload, dict):
        data = json.dumps(payload, separators=(",", ":"))
    else:
        data = payload
    return f"data: {data}\n\n".encode()


async def _stream_response(
    *, principal: Principal, body: ChatCompletionRequest, thread_id: str | None
) -> Response:
    run = await _StreamedRun.start(principal=principal, body=body, thread_id=thread_id)
    deltas = run.deltas()
    # Wait for the first delta so a failure before any output is an ordinary problem response.
    try:
        first: str | None = await anext(deltas)
    except StopAsyncIteration:
        first = None

    created = int(time.time())
    chunk_id = f"chatcmpl-{run.run_id}"

    def chunk(delta: ChunkDelta, finish: Literal["stop"] | None = None) -> bytes:
        return _sse(
            ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=body.model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            )
        )

    async def events() -> AsyncIterator[bytes]:
        yield chunk(ChunkDelta(role="assistant", content=""))
        try:
            if first is not None:
                yield chunk(ChunkDelta(content=first))
                async for delta in deltas:
                    yield chunk(ChunkDelta(content=delta))
        except AscentError as error:
            yield _sse(
                {"error": {"message": error.detail, "type": error.code, "code": error.status}}
            )
            return
        yield chunk(ChunkDelta(), "stop")
        if body.stream_options is not None and body.stream_options.include_usage:
            yield _sse(
                ChatCompletionChunk(
                    id=chunk_id, created=created, model=body.model, choices=[], usage=run.usage
                )
            )
        yield _sse("[DONE]")

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**_headers(run.thread_id, run.run_id), "Cache-Control": "no-cache"},
    )
