"""The no_card_numbers input guardrail: Luhn-checked payment card detection."""

from __future__ import annotations

import pytest
from agents import Agent, InputGuardrailTripwireTriggered, RunConfig, Runner

from examples.triage import build as build_triage
from shared.agents.guardrails import find_card_number, luhn_valid
from shared.platform.offline_model import OfflineModelProvider


class TestLuhn:
    def test_accepts_a_valid_checksum(self) -> None:
        """A well-known test card number passes the Luhn check."""
        assert luhn_valid("4111111111111111")

    def test_rejects_an_invalid_checksum(self) -> None:
        """Changing the last digit of a valid number fails the Luhn check."""
        assert not luhn_valid("4111111111111112")


class TestFindCardNumber:
    @pytest.mark.parametrize(
        "text",
        [
            "my card is 4111 1111 1111 1111",
            "card: 4111-1111-1111-1111, exp 12/29",
            "4111111111111111",
            "amex 378282246310005 please",
        ],
    )
    def test_finds_a_luhn_valid_card_number(self, text: str) -> None:
        """Card numbers, grouped by spaces or dashes or not at all, are found."""
        assert find_card_number(text)

    @pytest.mark.parametrize(
        "text",
        [
            "my card is 1234 5678 9012 3456",
            "order 123456 shipped on 2024-01-02",
            "call me at +1 415 555 0100",
            "no digits here",
        ],
    )
    def test_ignores_numbers_that_are_not_card_numbers(self, text: str) -> None:
        """Luhn-invalid 16-digit numbers, short numbers and plain text are not flagged."""
        assert not find_card_number(text)

    def test_ignores_a_valid_number_inside_a_longer_digit_run(self) -> None:
        """A card-shaped number embedded in a longer run of digits is not a card number."""
        assert not find_card_number("id 99999999999999999999999")


class TestGuardrailInARun:
    async def test_trips_on_a_card_number(self) -> None:
        """Running triage on input with a card number raises the tripwire."""
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        with pytest.raises(InputGuardrailTripwireTriggered) as caught:
            await Runner.run(build_triage(), "charge 4111 1111 1111 1111", run_config=config)
        assert caught.value.guardrail_result.guardrail.get_name() == "no_card_numbers"

    async def test_lets_other_input_through(self) -> None:
        """Input without a card number runs to an answer."""
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        result = await Runner.run(
            build_triage(), "my code is 1234 5678 9012 3456", run_config=config
        )
        assert result.final_output

    async def test_checks_list_input_too(self) -> None:
        """A card number inside list-of-messages input trips the guardrail as well."""
        agent = build_triage()
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        with pytest.raises(InputGuardrailTripwireTriggered):
            await Runner.run(
                agent,
                [{"role": "user", "content": [{"type": "input_text", "text": "4111111111111111"}]}],
                run_config=config,
            )

    def test_entry_agents_carry_the_guardrail(self) -> None:
        """The catalog's entry agents (triage, assistant) both have the card guardrail."""
        from shared.agents import get_agent

        for name in ("triage", "assistant"):
            agent: Agent[object] = get_agent(name)
            assert "no_card_numbers" in [g.get_name() for g in agent.input_guardrails]
