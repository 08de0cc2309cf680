"""An assistant's configuration applied to its catalog agent (shared/agents/configured.py)."""

from __future__ import annotations

import uuid

import pytest
from agents import Agent, RunContextWrapper

from examples.assistant import PROMPT
from shared.agents import get_agent
from shared.agents.configured import (
    Bound,
    bind_config,
    bound_of,
    catalog_assistant_id,
    catalog_name,
    configure,
    settings_of,
)
from shared.core.errors import ValidationFailed


def test_instructions_are_appended_to_the_agents_own() -> None:
    """The assistant's instructions follow the agent's, which stay first."""
    agent = configure(
        get_agent("assistant"), settings_of("assistant", None, {"instructions": "Be brief."})
    )
    assert agent.instructions == f"{PROMPT}\n\nBe brief."


async def test_dynamic_instructions_get_the_addendum_too() -> None:
    """An agent whose instructions are a function gets the addendum after what it returns."""
    base: Agent[None] = Agent(name="dyn", instructions=lambda ctx, agent: "Base.")
    agent = configure(base, settings_of("assistant", None, {"instructions": "More."}))
    assert callable(agent.instructions)
    text = await agent.get_system_prompt(RunContextWrapper(context=None))
    assert text == "Base.\n\nMore."


def test_tool_subset_keeps_only_the_named_tools_in_order() -> None:
    """`tools` keeps the named tools of the agent, in the agent's order."""
    settings = settings_of("assistant", {"configurable": {"tools": ["recall", "calculate"]}}, None)
    agent = configure(get_agent("assistant"), settings)
    assert [t.name for t in agent.tools] == ["calculate", "recall"]


def test_model_settings_map_onto_the_sdks() -> None:
    """`model_settings` become the agent's ModelSettings, keeping the agent's other settings."""
    settings = settings_of(
        "assistant",
        None,
        {"model": "gpt-x", "model_settings": {"temperature": 0.2, "max_tokens": 50}},
    )
    base = get_agent("assistant")
    agent = configure(base, settings)
    assert (agent.model, agent.model_settings.temperature, agent.model_settings.max_tokens) == (
        "gpt-x",
        0.2,
        50,
    )
    assert agent.model_settings.verbosity == base.model_settings.verbosity


def test_context_wins_over_configurable() -> None:
    """A key given in both `config.configurable` and `context` takes the context's value."""
    settings = settings_of("assistant", {"configurable": {"model": "a"}}, {"model": "b"})
    assert settings.model == "b"


@pytest.mark.parametrize(
    ("config", "context"),
    [
        ({"configurable": {"tools": ["issue_refund"]}}, None),
        (None, {"model_settings": {"temperature": 9}}),
        (None, {"model_settings": {"seed": 1}}),
        ({"configurable": "x"}, None),
        (None, {"model": ""}),
    ],
)
def test_invalid_configuration_is_refused(config: dict | None, context: dict | None) -> None:
    """Unknown tools, out-of-range or unknown model settings and bad shapes are 422."""
    with pytest.raises(ValidationFailed):
        settings_of("assistant", config, context)


def test_catalog_default_ids_follow_langgraph() -> None:
    """A catalog agent's default assistant id is uuid5(NAMESPACE_GRAPH, name); both name it."""
    expected = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "triage"))
    assert catalog_assistant_id("triage") == expected
    assert catalog_name(expected) == catalog_name("triage") == "triage"


def test_bind_config_records_the_assistant_and_drops_a_callers_claim() -> None:
    """A run's config records its assistant version; a caller's own claim to one is dropped."""
    claimed = {"tags": ["t"], "configurable": {"assistant_id": "x", "assistant_version": 9, "k": 1}}
    bound = bind_config(claimed, Bound("assistant", "a-id", 2))
    plain = bind_config(claimed, Bound("assistant"))
    assert bound_of(bound) == ("a-id", 2)
    assert bound["configurable"]["k"] == 1 and bound["tags"] == ["t"]
    assert bound_of(plain) is None and plain["configurable"] == {"k": 1}
