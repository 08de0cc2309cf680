"""The OpenAI-compatible API through the official `openai` client against a real dev host."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.conftest import DevHost

pytestmark = pytest.mark.e2e

HELLO: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Hello there, how are you today?"}
]


def client_for(devhost: DevHost, key: str | None = None) -> openai.OpenAI:
    """An `openai` client on the dev host's `/api/v1`, with no retries."""
    return openai.OpenAI(
        base_url=f"{devhost.base_url}/v1", api_key=key or devhost.api_key, max_retries=0
    )


def fresh_user() -> str:
    """A user id no earlier test has used, so its thread starts empty."""
    return f"user-{uuid.uuid4().hex}"


def test_completion_answers_and_echoes_the_agent(devhost: DevHost) -> None:
    """A non-streamed completion returns the agent's answer under the agent's name."""
    completion = client_for(devhost).chat.completions.create(model="assistant", messages=HELLO)
    assert completion.model == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_streamed_chunks_concatenate_to_the_non_streamed_answer(devhost: DevHost) -> None:
    """Streaming the same input on a fresh user yields the same text as not streaming."""
    client = client_for(devhost)
    whole = client.chat.completions.create(model="assistant", messages=HELLO, user=fresh_user())
    stream = client.chat.completions.create(
        model="assistant", messages=HELLO, user=fresh_user(), stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].object == "chat.completion.chunk"
    assert text == whole.choices[0].message.content


def test_stream_ends_with_usage_when_asked(devhost: DevHost) -> None:
    """`stream_options.include_usage` adds a final chunk carrying the run's usage."""
    stream = client_for(devhost).chat.completions.create(
        model="assistant", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens > 0


def test_user_continues_the_conversation(devhost: DevHost) -> None:
    """Two requests with the same `user` share a thread, so the agent recalls the name."""
    client, user = client_for(devhost), fresh_user()
    client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "my name is Ada"}], user=user
    )
    answer = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "What is my name?"}], user=user
    )
    assert "Ada" in (answer.choices[0].message.content or "")


def test_thread_header_continues_the_conversation(devhost: DevHost) -> None:
    """The thread named in the answer's header, sent back, continues that conversation."""
    client = client_for(devhost)
    first = client.chat.completions.with_raw_response.create(
        model="assistant",
        messages=[{"role": "user", "content": "my name is Ada"}],
        user=fresh_user(),
    )
    thread_id = first.headers["X-Ascent-Thread-Id"]
    answer = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "What is my name?"}],
        extra_headers={"X-Ascent-Thread-Id": thread_id},
    )
    assert "Ada" in (answer.choices[0].message.content or "")


def test_stateless_request_reads_the_whole_message_list(devhost: DevHost) -> None:
    """Without a user or thread, earlier messages of the list are the conversation."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "What is my name?"},
    ]
    answer = client_for(devhost).chat.completions.create(model="assistant", messages=messages)
    assert "Ada" in (answer.choices[0].message.content or "")


def test_models_list_lists_the_agents(devhost: DevHost) -> None:
    """`models.list` returns every catalog agent as a model."""
    names = {m.id for m in client_for(devhost).models.list()}
    assert {"triage", "assistant", "billing", "tech_support"} <= names


def test_unknown_model_raises_not_found(devhost: DevHost) -> None:
    """A model that names no agent is a 404, which the client raises as NotFoundError."""
    with pytest.raises(openai.NotFoundError):
        client_for(devhost).chat.completions.create(model="no-such-agent", messages=HELLO)


def test_invalid_body_raises_a_bad_request(devhost: DevHost) -> None:
    """An empty message list is OpenAI's 400 invalid_request_error, naming the field."""
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(devhost).chat.completions.create(model="assistant", messages=[])
    body: Any = raised.value.body
    assert (body["type"], body["param"]) == ("invalid_request_error", "messages")


def test_bad_key_raises_authentication_error(devhost: DevHost) -> None:
    """A key the server does not know is a 401, raised as AuthenticationError."""
    key = f"asc_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    with pytest.raises(openai.AuthenticationError):
        client_for(devhost, key=key).models.list()


def test_malformed_json_is_an_openai_error(devhost: DevHost) -> None:
    """A body that is not JSON gets a 400 in OpenAI's error shape, not a 5xx."""
    with devhost.client() as http:
        response = http.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "bad-request")


def test_unknown_thread_header_is_not_found(devhost: DevHost) -> None:
    """A thread header naming no thread of the tenant is a 404."""
    with devhost.client() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "assistant", "messages": HELLO},
            headers={"X-Ascent-Thread-Id": str(uuid.uuid4())},
        )
    assert response.status_code == httpx.codes.NOT_FOUND


WEATHER: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_client_tool_call_round_trip(devhost: DevHost) -> None:
    """The model calls the client's tool (finish_reason tool_calls); the client's `tool`
    message continues the conversation on the same thread."""
    client, user = client_for(devhost), fresh_user()
    asked: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "use get_weather for Paris"}
    ]
    first = client.chat.completions.create(
        model="assistant", messages=asked, tools=WEATHER, user=user
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    answered: list[ChatCompletionMessageParam] = [
        *asked,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = client.chat.completions.create(
        model="assistant", messages=answered, tools=WEATHER, user=user
    )
    assert "sunny, 21C" in (second.choices[0].message.content or "")
    assert second.choices[0].finish_reason == "stop"


def test_streamed_client_tool_call(devhost: DevHost) -> None:
    """Streamed, the client's tool call arrives as a `tool_calls` delta and finish_reason
    `tool_calls`."""
    stream = client_for(devhost).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "use get_weather for Paris"}],
        tools=WEATHER,
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    calls = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert [t.function.name for t in calls if t.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stateless_client_tool_round_trip(devhost: DevHost) -> None:
    """Without a thread, the resent conversation (call and tool result) is the input."""
    client = client_for(devhost)
    asked: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "use get_weather for Oslo"}
    ]
    first = client.chat.completions.create(model="assistant", messages=asked, tools=WEATHER)
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    answered: list[ChatCompletionMessageParam] = [
        *asked,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "snow"},
    ]
    second = client.chat.completions.create(model="assistant", messages=answered, tools=WEATHER)
    assert "snow" in (second.choices[0].message.content or "")
