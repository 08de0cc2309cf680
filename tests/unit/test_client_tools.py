"""Client-supplied tools and per-run instructions: the run stops before a client tool runs."""

from __future__ import annotations

from typing import Any

from agents import Agent, RunConfig, Runner
from agents.testing import ScriptedModel, assistant_message, function_call

from shared.runs.client_tools import CLIENT_TOOLS, INSTRUCTIONS, client_calls, customize

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def agent_with(model: Any) -> Agent[Any]:
    """A plain agent on `model`."""
    return Agent(name="a", instructions="Be kind.", model=model)


def test_no_additions_keep_the_agent() -> None:
    """Without instructions or tools the agent is returned unchanged."""
    agent = agent_with(None)
    assert customize(agent, {}) is agent


def test_instructions_are_appended() -> None:
    """The request's instructions follow the agent's own."""
    changed = customize(agent_with(None), {INSTRUCTIONS: "Answer briefly."})
    assert changed.instructions == "Be kind.\n\nAnswer briefly."


async def test_the_run_stops_before_a_client_tool() -> None:
    """A call of a client tool interrupts the run unexecuted and is reported as a client call."""
    config = {CLIENT_TOOLS: [WEATHER]}
    model = ScriptedModel([[function_call("get_weather", {"city": "Paris"}, call_id="c1")]])
    agent = customize(agent_with(model), config)
    result = Runner.run_streamed(agent, "weather?", run_config=RunConfig(tracing_disabled=True))
    async for _ in result.stream_events():
        pass
    assert client_calls(result.interruptions, config) == [
        {"call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    ]


async def test_a_server_tool_interruption_is_not_a_client_call() -> None:
    """Interruptions of tools the client did not supply are left to the review path."""
    model = ScriptedModel(
        [[function_call("get_weather", {"city": "Paris"}, call_id="c1")], [assistant_message("x")]]
    )
    agent = customize(agent_with(model), {CLIENT_TOOLS: [WEATHER]})
    result = Runner.run_streamed(agent, "weather?", run_config=RunConfig(tracing_disabled=True))
    async for _ in result.stream_events():
        pass
    assert client_calls(result.interruptions, {CLIENT_TOOLS: []}) == []
