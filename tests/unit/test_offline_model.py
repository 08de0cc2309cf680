"""The offline model: answers, tool calls, handoffs, recall, streaming and determinism."""

from __future__ import annotations

import json
from typing import Any

from agents import (
    Agent,
    Handoff,
    ModelSettings,
    RunConfig,
    Runner,
    SQLiteSession,
    Tool,
    function_tool,
    handoff,
)
from agents.items import TResponseInputItem, TResponseOutputItem
from agents.models.interface import ModelTracing
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
)

from examples import assistant, billing, tech_support
from shared.platform.offline_model import OfflineModel, OfflineModelProvider
from shared.runs.client_tools import client_tool

TRIAGE_HANDOFFS = [handoff(billing.build()), handoff(tech_support.build())]


async def decide(
    input: str | list[TResponseInputItem],
    *,
    tools: list[Tool] | None = None,
    handoffs: list[Handoff[Any, Any]] | None = None,
) -> TResponseOutputItem:
    """Ask a fresh offline model for its one output item."""
    response = await OfflineModel().get_response(
        None,
        input,
        ModelSettings(),
        tools or [],
        None,
        handoffs or [],
        ModelTracing.DISABLED,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    )
    assert len(response.output) == 1
    return response.output[0]


def text_of(item: TResponseOutputItem) -> str:
    """The text of an assistant message item."""
    assert isinstance(item, ResponseOutputMessage)
    return "".join(getattr(part, "text", "") for part in item.content)


def call_of(item: TResponseOutputItem) -> tuple[str, dict[str, Any]]:
    """The name and parsed arguments of a function-call item."""
    assert isinstance(item, ResponseFunctionToolCall)
    return item.name, json.loads(item.arguments)


def offline_config() -> RunConfig:
    """A run configuration on the offline provider with tracing off."""
    return RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)


class TestAnswers:
    async def test_answers_a_plain_message_with_a_text_message(self) -> None:
        """A message that matches no tool or handoff gets an assistant text answer quoting it."""
        item = await decide("hello there", tools=[assistant.calculate])
        assert "hello there" in text_of(item)

    async def test_answers_with_the_tool_output_once_the_tool_ran(self) -> None:
        """After a tool call and its output, the model answers with that output."""
        history: list[TResponseInputItem] = [
            {"role": "user", "content": "What is 2 + 2?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "calculate",
                "arguments": '{"expression":"2 + 2"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "2 + 2 = 4"},
        ]
        item = await decide(history, tools=[assistant.calculate])
        assert text_of(item) == "2 + 2 = 4"


class TestToolCalls:
    async def test_fills_a_pattern_argument_from_the_message(self) -> None:
        """A string argument with a pattern takes the first match in the message."""
        item = await decide("What is 12 * (3 + 4)?", tools=[assistant.calculate])
        assert call_of(item) == ("calculate", {"expression": "12 * (3 + 4)"})

    async def test_fills_numeric_arguments_in_the_order_of_the_message(self) -> None:
        """Numeric arguments take the message's numbers in order."""
        item = await decide("Can I get a refund of 40 after 12 days?", tools=[billing.refund_quote])
        assert call_of(item) == ("refund_quote", {"amount": 40.0, "days_since_purchase": 12})

    async def test_picks_the_tool_whose_pattern_matches(self) -> None:
        """Among several tools, the one whose pattern matches the message is called."""
        tools: list[Tool] = [assistant.calculate, assistant.current_time]
        item = await decide("What time is it in Europe/Paris?", tools=tools)
        assert call_of(item) == ("current_time", {"timezone": "Europe/Paris"})

    async def test_does_not_call_a_tool_whose_required_argument_is_missing(self) -> None:
        """A tool whose required argument cannot be found in the message is not called."""
        item = await decide("Please calculate something nice", tools=[assistant.calculate])
        assert isinstance(item, ResponseOutputMessage)

    async def test_runs_the_tool_and_answers_with_its_result(self) -> None:
        """Through the runner, the tool runs and its output becomes the final answer."""
        result = await Runner.run(
            assistant.build(), "What is 12 * (3 + 4)?", run_config=offline_config()
        )
        assert "84" in str(result.final_output)


class TestHandoffs:
    async def test_hands_off_to_the_agent_whose_description_matches(self) -> None:
        """A refund question is handed to billing, by its handoff description."""
        item = await decide("I want a refund for my invoice", handoffs=TRIAGE_HANDOFFS)
        assert call_of(item) == ("transfer_to_billing", {})

    async def test_hands_off_technical_problems_to_tech_support(self) -> None:
        """An error report is handed to tech support."""
        item = await decide("The app crashes with an error", handoffs=TRIAGE_HANDOFFS)
        assert call_of(item) == ("transfer_to_tech_support", {})

    async def test_does_not_hand_off_when_no_description_matches(self) -> None:
        """A message sharing no word with any handoff description is answered directly."""
        item = await decide("Good morning", handoffs=TRIAGE_HANDOFFS)
        assert isinstance(item, ResponseOutputMessage)

    async def test_does_not_hand_off_again_after_a_handoff(self) -> None:
        """Once a handoff happened since the user's message, the model answers instead."""
        history: list[TResponseInputItem] = [
            {"role": "user", "content": "I want a refund for my invoice"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "transfer_to_billing",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"assistant": "x"}'},
        ]
        item = await decide(history, handoffs=TRIAGE_HANDOFFS)
        assert isinstance(item, ResponseOutputMessage)

    async def test_two_agents_that_hand_off_to_each_other_do_not_loop(self) -> None:
        """Agents handing off to each other stop after one handoff and answer."""
        alpha = Agent(name="alpha", handoff_description="Handles refunds and invoices.")
        beta = Agent(name="beta", handoff_description="Handles refunds and invoices.")
        alpha.handoffs = [beta]
        beta.handoffs = [alpha]
        result = await Runner.run(
            alpha, "I want a refund", run_config=offline_config(), max_turns=4
        )
        assert result.last_agent.name == "beta"
        assert "refund" in str(result.final_output)


class TestMemory:
    async def test_recalls_a_fact_stated_earlier(self) -> None:
        """'my name is X' in an earlier message answers 'what is my name?'."""
        history: list[TResponseInputItem] = [
            {"role": "user", "content": "Hi, my name is Ada."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "What is my name?"},
        ]
        assert text_of(await decide(history)) == "Your name is Ada."

    async def test_recalls_a_fact_with_a_two_word_key(self) -> None:
        """'My favourite color is blue' is noted, then answers 'what is my favourite color?'."""
        assert text_of(await decide("My favourite color is blue")) == (
            "Noted: your favourite color is blue."
        )
        history: list[TResponseInputItem] = [
            {"role": "user", "content": "My favourite color is blue"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "What is my favourite color?"},
        ]
        assert text_of(await decide(history)) == "Your favourite color is blue."

    async def test_says_so_when_the_fact_was_never_stated(self) -> None:
        """Asking for a fact nobody stated says it is unknown instead of inventing one."""
        item = await decide("What is my name?")
        assert text_of(item) == "You haven't told me your name yet."

    async def test_recalls_across_runs_through_a_session(self) -> None:
        """Two runs on one session: the second recalls the name given in the first."""
        session = SQLiteSession("offline-recall")
        agent = Agent(name="plain")
        await Runner.run(agent, "my name is Grace", session=session, run_config=offline_config())
        result = await Runner.run(
            agent, "what is my name?", session=session, run_config=offline_config()
        )
        assert result.final_output == "Your name is Grace."


class TestStreaming:
    async def test_text_deltas_concatenate_to_the_final_output(self) -> None:
        """Streamed text deltas join to exactly the run's final text."""
        result = Runner.run_streamed(
            Agent(name="plain"), "tell me something", run_config=offline_config()
        )
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
        ]
        assert len(deltas) > 1
        assert "".join(deltas) == result.final_output

    async def test_a_token_delay_pauses_before_each_text_chunk_only(self) -> None:
        """With ASCENT_OFFLINE_TOKEN_DELAY_MS the stream pauses once per text delta, that long."""
        pauses: list[float] = []

        async def record(seconds: float) -> None:
            pauses.append(seconds)

        provider = OfflineModelProvider(25)
        model = provider.get_model(None)
        assert isinstance(model, OfflineModel)
        model.sleep = record
        config = RunConfig(model_provider=provider, tracing_disabled=True)
        result = Runner.run_streamed(Agent(name="plain"), "tell me something", run_config=config)
        deltas = [
            e async for e in result.stream_events()
            if e.type == "raw_response_event" and isinstance(e.data, ResponseTextDeltaEvent)
        ]  # fmt: skip
        assert pauses == [0.025] * len(deltas)

    async def test_stream_ends_with_response_completed(self) -> None:
        """The last raw model event of a streamed run is response.completed."""
        result = Runner.run_streamed(Agent(name="plain"), "hello", run_config=offline_config())
        raw = [e.data.type async for e in result.stream_events() if e.type == "raw_response_event"]
        assert raw[0] == "response.created"
        assert raw[-1] == "response.completed"

    async def test_streamed_tool_call_runs_the_tool(self) -> None:
        """A streamed run calls the tool and answers with its output, as a non-streamed one."""
        result = Runner.run_streamed(
            assistant.build(), "What is 6 * 7?", run_config=offline_config()
        )
        async for _ in result.stream_events():
            pass
        assert result.final_output == "6 * 7 = 42"


class TestDeterminism:
    async def test_same_input_gives_the_same_output(self) -> None:
        """Two fresh models given the same input return identical items, ids included."""
        history: list[TResponseInputItem] = [{"role": "user", "content": "What is 1 + 2?"}]
        first = await decide(history, tools=[assistant.calculate])
        second = await decide(history, tools=[assistant.calculate])
        assert first.model_dump() == second.model_dump()

    async def test_different_inputs_give_different_ids(self) -> None:
        """Different conversations produce different item ids (no collisions in a thread)."""
        first = await decide("first message")
        second = await decide("second message")
        assert first.id != second.id


@function_tool
def shout(words: str) -> str:
    """Shout the words back.

    Args:
        words: What to shout.
    """
    return words.upper()


class TestPlainStringArguments:
    async def test_a_free_text_argument_takes_the_whole_message(self) -> None:
        """A string argument without a pattern takes the message when the tool name matches."""
        item = await decide("shout hello", tools=[shout])
        assert call_of(item) == ("shout", {"words": "shout hello"})


class TestNamedTools:
    async def test_use_names_the_tool_to_call(self) -> None:
        """ "use <tool>" calls that tool even when another tool's words match the message."""
        weather = client_tool(
            {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        )
        tools: list[Tool] = [shout, weather]
        item = await decide("use get_weather and shout about Paris", tools=tools)
        assert call_of(item)[0] == "get_weather"

    async def test_use_of_an_unknown_tool_is_an_ordinary_message(self) -> None:
        """ "use <name>" naming no tool of the agent changes nothing."""
        item = await decide("use a hammer", tools=[assistant.calculate])
        assert isinstance(item, ResponseOutputMessage)
