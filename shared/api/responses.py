"""The OpenAI Responses API (`/v1/responses`) on the one run engine: a response is a run.

Clients use the official `openai` SDK (`client.responses.create/stream/retrieve/delete/cancel`,
`client.responses.input_items.list`) against `http://<host>/api/v1`. `model` names a catalog
agent. The adapter only translates: requests into the engine's `NewRun`, the run's events into
Responses stream events, its record into a `Response`, and review pauses into approval items.

Identifiers (all derived, no table of their own):

- a response's id is `resp_<run id as 32 hex digits>`; the run is the record (status, output,
  usage, `metadata`; `config` keeps `instructions`, the client's tools and the chain);
- `conversation` is a thread: its id is the thread's UUID (`conv_<32 hex>` is accepted too);
  the answer echoes it as `conversation.id`;
- an approval request's id is `mcpr_<review id as 32 hex digits>` (shared/runs/reviews.py).

Conversation state. Every response runs on a thread, kept after it ends:
`previous_response_id` continues the thread of that response (so the chain remembers);
`conversation` continues the given thread; neither starts a new thread. The two exclude each
other. Chains are linear, like a thread: continuing from a response that is not the thread's
latest continues the thread, it does not fork. `store` is accepted and ignored (always stored).

`instructions` are added to the agent's own for this response only; `metadata` (up to 16
string pairs) is the run's metadata and round-trips. Function `tools` supplied by the client
are given to the agent (shared/runs/client_tools.py): when the model calls one, the response
completes with `function_call` output items, and a follow-up request with
`previous_response_id` and `function_call_output` input items continues the conversation
(send `tools` again, as OpenAI clients do, so the model still knows them; a follow-up that
answers none of the calls leaves them unanswered in the history, which real models refuse).

Not supported: `GET /v1/responses/{id}?stream=true` (replay a stream: use
`GET /runs/{run_id}/stream`), forking a chain from an older response, and tool types other
than `function`; `tool_choice`, `text.format`, `truncation`, `include` and sampling
parameters are accepted and ignored (the agent's configuration decides).

Execution. Without `background`, the run executes on the instance that received the request
(`stream: true` answers `text/event-stream` of Responses events: `response.created`,
`response.in_progress`, `response.output_item.added`, `response.content_part.added`,
`response.output_text.delta`..., `response.output_text.done`, `response.content_part.done`,
`response.output_item.done`, then `response.completed`, `response.failed` or
`response.incomplete` (also for a cancelled response, status `cancelled`), each with its
`sequence_number`). As with OpenAI, a request that fails validation is an HTTP error (OpenAI's
error shape, shared/api/openai_errors.py), while a run that fails once the stream has started
ends with `response.failed`; non-streamed, a failed run is an HTTP error (400 for a refused
input, 502 for a model failure), like chat completions. A client that disconnects cancels the
run. With `background: true` the
run goes through the `agent-runs` queue like `POST /runs` and the answer is the `queued`
response; `GET /v1/responses/{id}` follows it, `POST /v1/responses/{id}/cancel` cancels it.

Statuses: pending `queued`, running `in_progress`, success `completed`, cancelled `cancelled`,
timed out `incomplete`, an answer refused by an output guardrail `incomplete`
(`content_filter`), any other failure `failed` (an input refused by a guardrail has error code
`invalid_prompt`).

Human approval. A run that pauses for a reviewer (billing's `issue_refund`, or an answer held
for review) completes with one `mcp_approval_request` output item per pending review
(`server_label` "ascent", `name` the tool, or `ascent_answer_review` for a held answer,
`arguments` as JSON). A follow-up request with `previous_response_id` and only
`{"type": "mcp_approval_response", "approval_request_id": "mcpr_...", "approve": bool}` input
items decides those reviews (the same authorization as `POST /reviews/{id}/decision`; a review
already decided is 409), and the paused run continues: the answer is that same response (same
id), now completed, streamed from where it paused when `stream` is set.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, cast

from fastapi import Response as HttpResponse
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseError,
    ResponseFailedEvent,
    ResponseFunctionToolCall,
    ResponseFunctionToolCallItem,
    ResponseFunctionToolCallOutputItem,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseInputMessageItem,
    ResponseInputText,
    ResponseItem,
    ResponseOutputItem,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_item_list import ResponseItemList
from openai.types.responses.response_output_item import McpApprovalRequest
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from sqlmodel import col, select

from shared.agents import configured
from shared.api import protocol, sse
from shared.api.simple import raise_for_failure
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.models import Run, new_id
from shared.db.review_models import Review
from shared.db.views import aware
from shared.memory.sessions import build_session
from shared.runs import client_tools, reviews, service
from shared.runs.dispatch import spawn
from shared.runs.messages import token_of
from shared.runs.records import NewRun
from shared.runs.watch import follow
from shared.security import thread_access
from shared.security.auth import Principal

Json = dict[str, Any]
ENTRY_POINT = "responses"
SERVER_LABEL = "ascent"
ANSWER_REVIEW = "ascent_answer_review"
RESPONSES_CONFIG = "responses"
_HEX = re.compile(r"[0-9a-f]{32}")
_TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_METADATA = 16


# --- identifiers ---------------------------------------------------------------------------


def response_id(run_id: str) -> str:
    """The response id of a run: `resp_` and the run's UUID as 32 hex digits."""
    return f"resp_{uuid.UUID(run_id).hex}"


def _uuid_after(prefix: str, value: str, kind: str) -> str:
    """The UUID a prefixed id (`resp_<hex>`) names; NotFound when it names none."""
    raw = value[len(prefix) :] if value.startswith(prefix) else ""
    if not _HEX.fullmatch(raw):
        raise NotFound(f"No {kind} {value[:80]!r}.")
    return str(uuid.UUID(raw))


def run_id_of(value: str) -> str:
    """The run a response id names (NotFound for anything else)."""
    return _uuid_after("resp_", value, "response")


def approval_id(review_id: str) -> str:
    """The `mcp_approval_request` id of a review: `mcpr_` and the review's UUID as hex."""
    return f"mcpr_{uuid.UUID(review_id).hex}"


def review_id_of(value: str) -> str:
    """The review an approval request id names (NotFound for anything else)."""
    return _uuid_after("mcpr_", value, "approval request")


def thread_of_conversation(value: str) -> str:
    """The thread a `conversation` names: its UUID, or `conv_<32 hex>`."""
    if value.startswith("conv_"):
        return _uuid_after("conv_", value, "conversation")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"No conversation {value[:80]!r}.") from None


# --- request -------------------------------------------------------------------------------


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputText(_Item):
    """A text part of an input message (`input_text`, or `output_text` of an assistant turn)."""

    type: Literal["input_text", "output_text", "text"] = "input_text"
    text: str = Field(max_length=1_000_000)


class InputMessage(_Item):
    """A message of the conversation given as input."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]

    @property
    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionCallOutput(_Item):
    """The client's result of a `function_call` it was handed."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=200)
    output: str


class FunctionCall(_Item):
    """A function call of an earlier turn, resent by a client that keeps its own history."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=200)
    name: str = Field(pattern=_TOOL_NAME)
    arguments: str


class ApprovalResponse(_Item):
    """A decision on an `mcp_approval_request` (a review)."""

    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(min_length=1, max_length=100)
    approve: bool
    reason: str | None = Field(None, max_length=4000)


def _kind(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "")
    return str(kind)


InputItem = Annotated[
    Annotated[InputMessage, Tag("message")]
    | Annotated[FunctionCallOutput, Tag("function_call_output")]
    | Annotated[FunctionCall, Tag("function_call")]
    | Annotated[ApprovalResponse, Tag("mcp_approval_response")],
    Discriminator(_kind),
]


class FunctionToolSpec(_Item):
    """A function the client executes itself (`tools: [{"type": "function", ...}]`)."""

    type: Literal["function"]
    name: str = Field(pattern=_TOOL_NAME)
    description: str | None = Field(None, max_length=4000)
    parameters: Json | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _check_parameters(self) -> FunctionToolSpec:
        check_parameters(self.parameters)
        return self

    def client_tool(self) -> Json:
        """The tool as the run's `config.client_tools` entry."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def check_parameters(parameters: Json | None) -> None:
    """A tool's parameters must be a JSON Schema object (`properties` of schemas)."""
    if parameters is None:
        return
    if parameters.get("type", "object") != "object":
        raise ValueError("tool parameters must be a JSON Schema of type object")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(p, dict) for p in properties.values()
    ):
        raise ValueError("tool parameters' properties must map names to schemas")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError("tool parameters' required must be a list of names")
    if "\x00" in json.dumps(parameters):
        raise ValueError("tool parameters must not contain NUL characters")


class ConversationRef(_Item):
    """`conversation` given as an object."""

    id: str = Field(min_length=1, max_length=100)


class ResponseCreate(BaseModel):
    """Body of `POST /v1/responses` (OpenAI's shape; unknown parameters are ignored)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"model": "assistant", "input": "Hi, my name is Ada"},
                {"model": "assistant", "input": "Hello", "stream": True},
                {
                    "model": "assistant",
                    "input": [{"role": "user", "content": "What time is it?"}],
                    "instructions": "Answer briefly.",
                    "metadata": {"ticket": "T-1"},
                },
            ]
        },
    )

    model: str = Field(min_length=1, max_length=100, description="A catalog agent's name.")
    input: str | list[InputItem] = Field(
        description="Text, or input items: messages, `function_call_output`, "
        "`mcp_approval_response`."
    )
    instructions: str | None = Field(
        None, max_length=100_000, description="Added to the agent's instructions, this turn."
    )
    metadata: dict[str, str] | None = Field(None, description="Up to 16 string pairs.")
    previous_response_id: str | None = Field(None, min_length=1, max_length=100)
    conversation: str | ConversationRef | None = Field(
        None, description="A thread (its UUID) to continue."
    )
    background: bool | None = Field(None, description="Run through the queue; answer at once.")
    stream: bool | None = Field(None, description="Answer as server-sent Responses events.")
    tools: list[FunctionToolSpec] | None = Field(
        None, max_length=64, description="Functions the client executes (type `function` only)."
    )
    store: bool | None = Field(None, description="Accepted and ignored: responses are stored.")

    @model_validator(mode="after")
    def _check(self) -> ResponseCreate:
        limit = get_settings().max_input_chars
        texts = [self.input] if isinstance(self.input, str) else [_text_of(i) for i in self.input]
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input must not be an empty list")
        if sum(len(t) for t in texts) > limit:
            raise ValueError(f"the input may be at most {limit} characters")
        strings = [*texts, self.instructions or "", self.model]
        if self.metadata is not None:
            if len(self.metadata) > MAX_METADATA:
                raise ValueError(f"metadata may hold at most {MAX_METADATA} pairs")
            for key, value in self.metadata.items():
                if len(key) > 64 or len(value) > 512:
                    raise ValueError("metadata keys are at most 64, values 512 characters")
                strings += [key, value]
        if any("\x00" in s for s in strings):
            raise ValueError("the request must not contain NUL characters")
        if isinstance(self.input, str) and not self.input.strip():
            raise ValueError("input must not be blank")
        if self.conversation is not None and self.previous_response_id is not None:
            raise ValueError("give conversation or previous_response_id, not both")
        return self

    @property
    def items(self) -> list[Any]:
        """The input as items (a string is one user message)."""
        if isinstance(self.input, str):
            return [InputMessage(role="user", content=self.input)]
        return list(self.input)

    @property
    def conversation_id(self) -> str | None:
        """The conversation's id as given."""
        if isinstance(self.conversation, ConversationRef):
            return self.conversation.id
        return self.conversation


def _text_of(item: Any) -> str:
    if isinstance(item, InputMessage):
        return item.text
    if isinstance(item, FunctionCallOutput):
        return item.output
    if isinstance(item, FunctionCall):
        return item.arguments
    if isinstance(item, ApprovalResponse):
        return item.reason or ""
    return ""


def sdk_items(items: list[Any]) -> list[Json]:
    """Request input items as Agents SDK input items."""
    converted: list[Json] = []
    for item in items:
        if isinstance(item, InputMessage):
            converted.append({"type": "message", "role": item.role, "content": item.text})
        elif isinstance(item, FunctionCallOutput):
            converted.append(
                {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
            )
        elif isinstance(item, FunctionCall):
            converted.append(
                {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                }
            )
    return converted


class ItemsQuery(BaseModel):
    """Query of `GET /v1/responses/{id}/input_items`."""

    limit: int = Field(20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = Field(None, max_length=200)


class ResponseDeleted(BaseModel):
    """Body of `DELETE /v1/responses/{id}`."""

    id: str
    object: Literal["response"] = "response"
    deleted: Literal[True] = True


# --- rendering a run as a Response -----------------------------------------------------------


def _usage(run: Run) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        total_tokens=run.total_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def message_item(run_id: str, text: str, *, status: str = "completed") -> ResponseOutputMessage:
    """The assistant message of a response."""
    return ResponseOutputMessage(
        id=f"msg_{uuid.UUID(run_id).hex}",
        type="message",
        role="assistant",
        status=cast(Any, status),
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def approval_item(review: Review) -> McpApprovalRequest:
    """A pending review as an `mcp_approval_request` output item."""
    if review.kind == "tool":
        name, arguments = review.tool or "tool", review.arguments or {}
    else:
        name, arguments = ANSWER_REVIEW, {"reason": review.reason}
    return McpApprovalRequest(
        id=approval_id(review.id),
        type="mcp_approval_request",
        server_label=SERVER_LABEL,
        name=name,
        arguments=json.dumps(arguments, separators=(",", ":")),
    )


def call_item(call: Json) -> ResponseFunctionToolCall:
    """A client tool call as a `function_call` output item."""
    return ResponseFunctionToolCall(
        id=f"fc_{call['call_id']}",
        type="function_call",
        call_id=str(call["call_id"]),
        name=str(call["name"]),
        arguments=str(call["arguments"]),
        status="completed",
    )


def _status(run: Run) -> str:
    if run.status == "pending":
        return "queued"
    if run.status == "running":
        return "in_progress"
    if run.status == "success" or (run.status == "interrupted" and run.error is None):
        return "completed"
    if run.status == "interrupted":
        return "cancelled"
    if run.status == "timeout" or (run.error or "").startswith("output guardrail"):
        return "incomplete"
    return "failed"


async def _pending_reviews(run: Run) -> list[Review]:
    async with db_session() as db:
        found = await db.exec(
            select(Review)
            .where(
                col(Review.tenant_id) == run.tenant_id,
                col(Review.run_id) == run.id,
                col(Review.status) == "pending",
            )
            .order_by(col(Review.requested_at), col(Review.id))
        )
        return list(found.all())


async def client_calls_of(run: Run) -> list[Json]:
    """The client tool calls a run stopped at: the calls ending its turn in the thread."""
    if run.status != "success" or run.output or run.thread_id is None:
        return []
    if not client_tools.client_tool_names(run.config):
        return []
    items = await build_session(run.tenant_id, run.thread_id).get_items()
    turn = items[: run.history_len] if run.history_len is not None else items
    calls: list[Json] = []
    for raw in reversed(turn):
        item = raw if isinstance(raw, dict) else {}
        if item.get("type") != "function_call":
            break
        calls.append(
            {
                "call_id": item.get("call_id"),
                "name": item.get("name"),
                "arguments": item.get("arguments"),
            }
        )
    return list(reversed(calls))


async def output_of(run: Run) -> list[ResponseOutputItem]:
    """A run's output items: its answer, the client calls it stopped at, or its approvals."""
    if run.status == "interrupted" and run.error is None:
        return [approval_item(r) for r in await _pending_reviews(run)]
    calls = await client_calls_of(run)
    if calls:
        return [call_item(c) for c in calls]
    if run.output:
        return [message_item(run.id, run.output)]
    return []


def _config(run: Run) -> Json:
    found = (run.config or {}).get(RESPONSES_CONFIG)
    return found if isinstance(found, dict) else {}


def render(run: Run, output: list[ResponseOutputItem], *, status: str | None = None) -> Response:
    """A run as a `Response` (validated by the `openai` package's own model)."""
    state = status or _status(run)
    config = _config(run)
    error = None
    incomplete = None
    if state == "failed":
        code = "invalid_prompt" if (run.error or "").startswith("input guardrail") else None
        error = ResponseError(code=cast(Any, code or "server_error"), message=run.error or "failed")
    elif state == "incomplete":
        filtered = (run.error or "").startswith("output guardrail")
        incomplete = IncompleteDetails(reason="content_filter" if filtered else None)
    tools = [
        FunctionTool(
            type="function",
            name=str(t["name"]),
            description=t.get("description"),
            parameters=t.get("parameters") or {"type": "object", "properties": {}},
            strict=False,
        )
        for t in (run.config or {}).get(client_tools.CLIENT_TOOLS) or []
    ]
    finished = (
        run.finished_at if state in ("completed", "failed", "incomplete", "cancelled") else None
    )
    return Response(
        id=response_id(run.id),
        object="response",
        created_at=aware(run.created_at).timestamp(),
        completed_at=aware(finished).timestamp() if finished is not None else None,
        model=run.agent,
        status=cast(Any, state),
        output=output,
        error=error,
        incomplete_details=incomplete,
        instructions=(run.config or {}).get(client_tools.INSTRUCTIONS),
        metadata=dict(run.metadata_ or {}),
        previous_response_id=config.get("previous_response_id"),
        conversation=(
            cast(Any, {"id": run.thread_id})
            if config.get("conversation") and run.thread_id
            else None
        ),
        background=bool(config.get("background")),
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=cast(Any, tools),
        usage=_usage(run) if state not in ("queued", "in_progress") else None,
    )


async def load(principal: Principal, value: str) -> Run:
    """The run behind a response id the principal sees (404 for any other id)."""
    try:
        run = await protocol.get_run(principal, run_id_of(value))
    except NotFound:
        run = None
    if run is None or run.entry_point != ENTRY_POINT:
        # Named as the client named it (never the run id behind it).
        raise NotFound(f"No response {value[:80]!r}.")
    return run


async def response_of(run: Run) -> Response:
    """A stored run as its Response."""
    return render(run, await output_of(run))


def _json(response: BaseModel) -> JSONResponse:
    return JSONResponse(response.model_dump(mode="json", exclude_none=False))


# --- creating -----------------------------------------------------------------------------


async def create(principal: Principal, body: ResponseCreate) -> HttpResponse:
    """`POST /v1/responses`: a new run, or the continuation of a paused one (approvals)."""
    # A catalog agent or the tenant's assistant; an unknown model is 404 before any write.
    await configured.resolve(principal.tenant_id, body.model)
    items = body.items
    approvals = [i for i in items if isinstance(i, ApprovalResponse)]
    if approvals:
        return await _decide(principal, body, approvals, len(items))
    thread_id: str | None = None
    previous: Run | None = None
    if body.previous_response_id is not None:
        previous = await load(principal, body.previous_response_id)
        if previous.thread_id is None:
            raise NotFound(f"The conversation of {body.previous_response_id!r} was deleted.")
        thread_id = previous.thread_id
    elif body.conversation_id is not None:
        thread_id = thread_of_conversation(body.conversation_id)
    converted = sdk_items(items)
    config: Json = {
        RESPONSES_CONFIG: {
            "previous_response_id": body.previous_response_id,
            "conversation": body.conversation_id is not None,
            "background": bool(body.background),
        }
    }
    if body.instructions:
        config[client_tools.INSTRUCTIONS] = body.instructions
    if body.tools:
        config[client_tools.CLIENT_TOOLS] = [t.client_tool() for t in body.tools]
    new = NewRun(
        run_id=new_id(),
        tenant_id=principal.tenant_id,
        agent=body.model,
        input_text="\n".join(i["content"] for i in converted if i.get("role") == "user"),
        input_items=converted,
        entry_point=ENTRY_POINT,
        user_id=principal.user_id or principal.key_id,
        thread_id=thread_id,
        thread_visible=thread_access.thread_visible(principal),
        new_thread_owner=thread_access.owner_for(principal),
        new_thread_metadata={"source": "responses"},
        metadata=dict(body.metadata or {}),
        config=config,
        on_completion="keep",
        on_disconnect="continue" if body.background else "cancel",
    )
    if body.background:
        run = await service.submit(new)
        if body.stream:
            return _streaming(principal, run, after=0, cancel_on_disconnect=False)
        return _json(render(run, []))
    handle = await service.run_here(new, principal=principal)
    if body.stream:
        return _streaming(principal, handle.run, after=1, cancel_on_disconnect=True)
    raise_for_failure(await handle.outcome())
    return _json(await response_of(await protocol.get_run(principal, handle.run.id)))


async def _decide(
    principal: Principal, body: ResponseCreate, approvals: list[ApprovalResponse], given: int
) -> HttpResponse:
    """Decide the reviews a paused response waits for, and answer with it as it continues."""
    if body.previous_response_id is None:
        raise ValidationFailed("An mcp_approval_response needs the previous_response_id.")
    if len(approvals) != given:
        raise ValidationFailed("Send mcp_approval_response items alone, without other input.")
    run = await load(principal, body.previous_response_id)
    after = await protocol.resume_stream_start(principal, run.thread_id)
    resume: list[str] = []
    for approval in approvals:
        review_id = review_id_of(approval.approval_request_id)
        async with db_session() as db:
            review = await db.get(Review, review_id)
        if review is None or review.run_id != run.id:
            raise NotFound(
                f"No approval request {approval.approval_request_id!r} on this response."
            )
        decision = reviews.ReviewDecision(
            decision="approve" if approval.approve else "reject", comment=approval.reason
        )
        decided = await reviews.decide(principal, review_id, decision)
        if decided.resume is not None:
            resume.append(decided.resume)
    await service.resume(resume)
    if body.stream:
        return _streaming(principal, run, after=after, cancel_on_disconnect=False)
    if body.background or not resume:
        return _json(await response_of(await protocol.get_run(principal, run.id)))
    await service.wait(principal.tenant_id, run.id)
    current = await protocol.get_run(principal, run.id)
    return _json(await response_of(current))


# --- streaming ----------------------------------------------------------------------------


class _Events:
    """Numbers Responses stream events (`sequence_number`) and frames them as SSE."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, event: type[BaseModel], **fields: Any) -> bytes:
        made = event(sequence_number=self.seq, **fields)
        self.seq += 1
        framed = cast(ResponseStreamEvent, made)
        return sse.encode(framed, event=framed.type)


def _streaming(
    principal: Principal, run: Run, *, after: int, cancel_on_disconnect: bool
) -> StreamingResponse:
    return StreamingResponse(
        stream_events(principal, run, after=after, cancel_on_disconnect=cancel_on_disconnect),
        media_type=sse.MEDIA_TYPE,
        headers={"Cache-Control": "no-cache"},
    )


async def stream_events(
    principal: Principal, run: Run, *, after: int, cancel_on_disconnect: bool
) -> AsyncIterator[bytes]:
    """The run's events after seq `after` as Responses events, ending with its terminal one."""
    emit = _Events()
    start = render(run, [], status="in_progress")
    text: list[str] = []
    opened = False
    message = message_item(run.id, "", status="in_progress")
    ended = False
    try:
        yield emit(ResponseCreatedEvent, type="response.created", response=start)
        yield emit(ResponseInProgressEvent, type="response.in_progress", response=start)
        async for row in follow(tenant_id=principal.tenant_id, run_id=run.id, after=after):
            if row is None:
                yield sse.KEEPALIVE
                continue
            token = token_of(row[1], row[2])
            if token is not None:
                if not opened:
                    opened = True
                    for chunk in _open_message(emit, message):
                        yield chunk
                text.append(token)
                yield emit(
                    ResponseTextDeltaEvent,
                    type="response.output_text.delta",
                    item_id=message.id,
                    output_index=0,
                    content_index=0,
                    delta=token,
                    logprobs=[],
                )
            if row[1] == "end":
                break
        ended = True
        final = await protocol.get_run(principal, run.id)
        stored = await output_of(final)
        output: list[ResponseOutputItem] = []
        if opened:
            done = message_item(run.id, "".join(text))
            for chunk in _close_message(emit, done, 0):
                yield chunk
            output.append(done)
        for item in stored:
            if isinstance(item, ResponseOutputMessage):
                if opened:
                    continue  # streamed already (as every text delta of the run)
                for chunk in _whole_message(emit, item, len(output)):
                    yield chunk
            else:
                index = len(output)
                yield emit(
                    ResponseOutputItemAddedEvent,
                    type="response.output_item.added",
                    item=item,
                    output_index=index,
                )
                yield emit(
                    ResponseOutputItemDoneEvent,
                    type="response.output_item.done",
                    item=item,
                    output_index=index,
                )
            output.append(item)
        response = render(final, output)
        if response.status == "failed":
            yield emit(ResponseFailedEvent, type="response.failed", response=response)
        elif response.status in ("incomplete", "cancelled"):
            yield emit(ResponseIncompleteEvent, type="response.incomplete", response=response)
        else:
            yield emit(ResponseCompletedEvent, type="response.completed", response=response)
    finally:
        if not ended and cancel_on_disconnect:
            # The client went away: stop the run (from a task of its own: this one may not
            # await any more).
            spawn(service.cancel(run.tenant_id, run.id))


def _open_message(emit: _Events, message: ResponseOutputMessage) -> list[bytes]:
    empty = ResponseOutputText(type="output_text", text="", annotations=[])
    return [
        emit(
            ResponseOutputItemAddedEvent,
            type="response.output_item.added",
            item=message,
            output_index=0,
        ),
        emit(
            ResponseContentPartAddedEvent,
            type="response.content_part.added",
            item_id=message.id,
            output_index=0,
            content_index=0,
            part=empty,
        ),
    ]


def _close_message(emit: _Events, message: ResponseOutputMessage, index: int) -> list[bytes]:
    part = message.content[0]
    text = part.text if isinstance(part, ResponseOutputText) else ""
    return [
        emit(
            ResponseTextDoneEvent,
            type="response.output_text.done",
            item_id=message.id,
            output_index=index,
            content_index=0,
            text=text,
            logprobs=[],
        ),
        emit(
            ResponseContentPartDoneEvent,
            type="response.content_part.done",
            item_id=message.id,
            output_index=index,
            content_index=0,
            part=part,
        ),
        emit(
            ResponseOutputItemDoneEvent,
            type="response.output_item.done",
            item=message,
            output_index=index,
        ),
    ]


def _whole_message(emit: _Events, message: ResponseOutputMessage, index: int) -> list[bytes]:
    """A message that was not streamed token by token (a released answer): all its events."""
    part = message.content[0]
    text = part.text if isinstance(part, ResponseOutputText) else ""
    pending = message.model_copy(update={"status": "in_progress", "content": []})
    empty = ResponseOutputText(type="output_text", text="", annotations=[])
    return [
        emit(
            ResponseOutputItemAddedEvent,
            type="response.output_item.added",
            item=pending,
            output_index=index,
        ),
        emit(
            ResponseContentPartAddedEvent,
            type="response.content_part.added",
            item_id=message.id,
            output_index=index,
            content_index=0,
            part=empty,
        ),
        emit(
            ResponseTextDeltaEvent,
            type="response.output_text.delta",
            item_id=message.id,
            output_index=index,
            content_index=0,
            delta=text,
            logprobs=[],
        ),
        *_close_message(emit, message, index),
    ]


# --- reading, deleting, cancelling ----------------------------------------------------------


async def retrieve(principal: Principal, value: str) -> Response:
    """`GET /v1/responses/{id}`."""
    return await response_of(await load(principal, value))


async def delete(principal: Principal, value: str) -> ResponseDeleted:
    """`DELETE /v1/responses/{id}`: delete a finished response (409 while it runs)."""
    run = await load(principal, value)
    await protocol.delete_run(principal, run.id)
    return ResponseDeleted(id=response_id(run.id))


async def cancel(principal: Principal, value: str) -> Response:
    """`POST /v1/responses/{id}/cancel`: cancel a queued, running or paused response, and
    answer once it has stopped (cancelling a cancelled response answers it again)."""
    run = await load(principal, value)
    if run.status == "interrupted" and run.error == "cancelled":
        return await response_of(run)
    try:
        cancelled = await protocol.cancel_run(principal, run.id, wait=True)
    except Conflict:
        raise Conflict(f"The response has already finished ({_status(run)}).") from None
    return await response_of(cancelled)


def input_item(run_id: str, index: int, item: Json) -> ResponseItem:
    """One stored input item of a run as a Responses item (ids derived from the run)."""
    base = f"{uuid.UUID(run_id).hex}_{index}"
    kind = item.get("type", "message")
    if kind == "function_call_output":
        return ResponseFunctionToolCallOutputItem(
            id=f"fco_{base}",
            type="function_call_output",
            call_id=str(item.get("call_id")),
            output=str(item.get("output")),
            status="completed",
        )
    if kind == "function_call":
        return ResponseFunctionToolCallItem(
            id=f"fc_{base}",
            type="function_call",
            call_id=str(item.get("call_id")),
            name=str(item.get("name")),
            arguments=str(item.get("arguments")),
            status="completed",
        )
    text = str(item.get("content") or "")
    if item.get("role") == "assistant":
        return ResponseOutputMessage(
            id=f"msg_{base}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
    return ResponseInputMessageItem(
        id=f"msg_{base}",
        type="message",
        role=cast(Any, item.get("role") or "user"),
        status="completed",
        content=[ResponseInputText(type="input_text", text=text)],
    )


async def input_items(principal: Principal, value: str, query: ItemsQuery) -> ResponseItemList:
    """`GET /v1/responses/{id}/input_items`: the response's input, paged like OpenAI's."""
    run = await load(principal, value)
    stored = run.input_items or [{"type": "message", "role": "user", "content": run.input}]
    items = [input_item(run.id, i, dict(item)) for i, item in enumerate(stored)]
    if query.order == "desc":
        items.reverse()
    if query.after is not None:
        ids = [i.id for i in items]
        items = items[ids.index(query.after) + 1 :] if query.after in ids else []
    page = items[: query.limit]
    return ResponseItemList(
        object="list",
        data=page,
        first_id=page[0].id if page else "",
        last_id=page[-1].id if page else "",
        has_more=len(items) > len(page),
    )
