"""The OpenAI Responses API through the official `openai` client against a real dev host."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from openai.types.responses import FunctionToolParam, Response

from tests.conftest import DevHost

pytestmark = pytest.mark.e2e

# Bounds of the loops that wait for an observable status (never a fixed sleep).
WAIT_SECONDS = 30.0
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


def client_for(devhost: DevHost) -> openai.OpenAI:
    """An `openai` client on the dev host's `/api/v1`, with no retries."""
    return openai.OpenAI(base_url=f"{devhost.base_url}/v1", api_key=devhost.api_key, max_retries=0)


def until_status(client: openai.OpenAI, response_id: str, wanted: set[str]) -> Response:
    """Retrieve the response until its status is one of `wanted` (bounded, then fail)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = client.responses.retrieve(response_id)
        if found.status in wanted or time.monotonic() > deadline:
            assert found.status in wanted, found.status
            return found


def approval_of(response: Response) -> Any:
    """The one `mcp_approval_request` item of a paused response."""
    [request] = [i for i in response.output if i.type == "mcp_approval_request"]
    return request


def test_create_answers_with_a_completed_response(devhost: DevHost) -> None:
    """A non-streamed create returns a completed response carrying the agent's answer."""
    response = client_for(devhost).responses.create(model="assistant", input="Hello there")
    assert response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "assistant"
    assert "Hello there" in response.output_text
    assert response.usage is not None and response.usage.total_tokens > 0


def test_stream_is_a_valid_event_sequence(devhost: DevHost) -> None:
    """`responses.stream` consumes the events, and its final response equals the streamed text."""
    client = client_for(devhost)
    with client.responses.stream(model="assistant", input="Hello streaming world") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert [t for t in types if t != "response.output_text.delta"] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert types.index("response.output_text.delta") == 4
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas and "Hello streaming world" in deltas


def test_previous_response_id_remembers(devhost: DevHost) -> None:
    """A follow-up naming the previous response continues its conversation."""
    client = client_for(devhost)
    first = client.responses.create(model="assistant", input="my name is Ada")
    second = client.responses.create(
        model="assistant", input="what is my name", previous_response_id=first.id
    )
    assert "Ada" in second.output_text
    assert second.previous_response_id == first.id


def test_conversation_continues_a_thread(devhost: DevHost) -> None:
    """Two responses in the same conversation (a thread) share its history."""
    client = client_for(devhost)
    with devhost.client() as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
    client.responses.create(model="assistant", input="my name is Grace", conversation=thread_id)
    answer = client.responses.create(
        model="assistant", input="what is my name", conversation=thread_id
    )
    assert "Grace" in answer.output_text
    assert answer.conversation is not None and answer.conversation.id == thread_id


def test_instructions_and_metadata_round_trip(devhost: DevHost) -> None:
    """`instructions` and `metadata` are kept on the response and retrieved unchanged."""
    client = client_for(devhost)
    created = client.responses.create(
        model="assistant",
        input="Hello",
        instructions="Answer in one sentence.",
        metadata={"ticket": "T-42"},
    )
    found = client.responses.retrieve(created.id)
    assert found.instructions == "Answer in one sentence."
    assert found.metadata == {"ticket": "T-42"}
    assert found.output_text == created.output_text


def test_input_items_lists_the_input(devhost: DevHost) -> None:
    """`input_items.list` returns the response's input messages, oldest first when asked."""
    client = client_for(devhost)
    created = client.responses.create(
        model="assistant",
        input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
        ],
    )
    items = client.responses.input_items.list(created.id, order="asc")
    texts = [item.content[0].text for item in items.data if item.type == "message"]  # type: ignore[union-attr]
    assert texts == ["first", "second"]


def test_delete_removes_the_response(devhost: DevHost) -> None:
    """A deleted response is gone: retrieving it is a 404."""
    client = client_for(devhost)
    created = client.responses.create(model="assistant", input="Hello")
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_background_response_completes(devhost: DevHost) -> None:
    """A background response is queued at once and completes through the queue."""
    client = client_for(devhost)
    created = client.responses.create(model="assistant", input="Hello later", background=True)
    assert created.status in ("queued", "in_progress") and created.background
    done = until_status(client, created.id, {"completed"})
    assert "Hello later" in done.output_text


def test_background_stream_follows_the_queued_run(devhost: DevHost) -> None:
    """A background response can be streamed too: the queued run's events, then completed."""
    client = client_for(devhost)
    with client.responses.stream(
        model="assistant", input="Hello from the queue", background=True
    ) as stream:
        final = stream.get_final_response()
    assert final.background and final.status == "completed"
    assert "Hello from the queue" in final.output_text


def test_cancel_stops_a_paused_response(devhost: DevHost) -> None:
    """Cancelling a response that waits for approval ends it `cancelled`."""
    client = client_for(devhost)
    paused = client.responses.create(model="billing", input="please issue a refund of 40")
    cancelled = client.responses.cancel(paused.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(paused.id).status == "cancelled"


def test_cancel_a_background_response(devhost: DevHost) -> None:
    """A background response, once it waits for approval, is cancelled by `responses.cancel`."""
    client = client_for(devhost)
    created = client.responses.create(
        model="billing", input="please issue a refund of 40", background=True
    )
    until_status(client, created.id, {"completed"})  # paused for approval
    assert client.responses.cancel(created.id).status == "cancelled"


def test_approval_request_then_approval_completes(devhost: DevHost) -> None:
    """A refund pauses as an mcp_approval_request; approving it continues the same response."""
    client = client_for(devhost)
    paused = client.responses.create(model="billing", input="please issue a refund of 40")
    request = approval_of(paused)
    assert request.id.startswith("mcpr_") and request.name == "issue_refund"
    assert json.loads(request.arguments) == {"amount": 40}
    done = client.responses.create(
        model="billing",
        previous_response_id=paused.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    assert done.id == paused.id and done.status == "completed"
    assert not [i for i in done.output if i.type == "mcp_approval_request"]
    assert "40" in done.output_text


def test_approval_rejection_completes_without_the_refund(devhost: DevHost) -> None:
    """Rejecting the approval request continues the run, which ends without refunding."""
    client = client_for(devhost)
    paused = client.responses.create(model="billing", input="please issue a refund of 40")
    done = client.responses.create(
        model="billing",
        previous_response_id=paused.id,
        input=[
            {
                "type": "mcp_approval_response",
                "approval_request_id": approval_of(paused).id,
                "approve": False,
            }
        ],
    )
    assert done.status == "completed" and done.output_text


def test_streamed_approval_continues_the_stream(devhost: DevHost) -> None:
    """A streamed approval follow-up streams the resumed part and completes."""
    client = client_for(devhost)
    paused = client.responses.create(model="billing", input="please issue a refund of 40")
    with client.responses.stream(
        model="billing",
        previous_response_id=paused.id,
        input=[
            {
                "type": "mcp_approval_response",
                "approval_request_id": approval_of(paused).id,
                "approve": True,
            }
        ],
    ) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and "40" in final.output_text


def test_client_tool_call_round_trip(devhost: DevHost) -> None:
    """The model calls the client's tool; the client's output continues the conversation."""
    client = client_for(devhost)
    first = client.responses.create(
        model="assistant", input="use get_weather for Paris", tools=[WEATHER]
    )
    [call] = [i for i in first.output if i.type == "function_call"]
    assert call.name == "get_weather"
    second = client.responses.create(
        model="assistant",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
    )
    assert "sunny, 21C" in second.output_text


def test_unknown_model_is_not_found(devhost: DevHost) -> None:
    """A model that names no agent is OpenAI's 404 error."""
    with pytest.raises(openai.NotFoundError) as raised:
        client_for(devhost).responses.create(model="no-such-agent", input="Hello")
    assert raised.value.body["type"] == "not_found_error"  # type: ignore[index]


def test_bad_body_is_a_bad_request(devhost: DevHost) -> None:
    """An invalid body is OpenAI's 400 `invalid_request_error`, naming the field."""
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(devhost).responses.create(model="assistant", input=[])
    body: Any = raised.value.body
    assert body["type"] == "invalid_request_error"


def test_streamed_client_tool_call_is_a_function_call_item(devhost: DevHost) -> None:
    """Streamed, the client's tool call arrives as a `function_call` output item."""
    client = client_for(devhost)
    with client.responses.stream(
        model="assistant", input="use get_weather for Rome", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    [call] = [i for i in final.output if i.type == "function_call"]
    assert call.name == "get_weather" and final.status == "completed"


def test_approval_without_previous_response_is_a_bad_request(devhost: DevHost) -> None:
    """An mcp_approval_response needs the response it answers: without it, a 400."""
    with pytest.raises(openai.BadRequestError):
        client_for(devhost).responses.create(
            model="billing",
            input=[
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": f"mcpr_{'0' * 32}",
                    "approve": True,
                }
            ],
        )


def test_a_new_message_on_a_paused_response_conflicts(devhost: DevHost) -> None:
    """While a response waits for approval its conversation is held: a new message is 409."""
    client = client_for(devhost)
    paused = client.responses.create(model="billing", input="please issue a refund of 40")
    with pytest.raises(openai.ConflictError):
        client.responses.create(model="billing", input="hello", previous_response_id=paused.id)
