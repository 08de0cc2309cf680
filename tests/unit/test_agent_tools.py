"""The catalog's tools: the safe calculator, the refund policy and the error-code lookup."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import FunctionTool
from agents.tool_context import ToolContext

from examples.assistant import MAX_EXPONENT, calculate, evaluate
from examples.billing import refund_amount, refund_quote
from examples.tech_support import lookup_error
from shared.agents import catalog, get_agent
from shared.core.errors import NotFound


async def invoke(tool: FunctionTool, **arguments: Any) -> Any:
    """Invoke a function tool the way the runner does, with JSON arguments."""
    payload = json.dumps(arguments)
    context = ToolContext(
        context=None, tool_name=tool.name, tool_call_id="call_test", tool_arguments=payload
    )
    return await tool.on_invoke_tool(context, payload)


class TestEvaluate:
    @pytest.mark.parametrize(
        ("expression", "value"),
        [
            ("12 * (3 + 4)", 84),
            ("2 ** 10", 1024),
            ("2 ^ 3", 8),
            ("-5 + 2", -3),
            ("7 % 4", 3),
            ("1 / 4", 0.25),
        ],
    )
    def test_evaluates_arithmetic(self, expression: str, value: float) -> None:
        """The four operations, modulo, powers, unary minus and parentheses evaluate."""
        assert evaluate(expression) == value

    @pytest.mark.parametrize(
        "expression",
        ["__import__('os')", "x + 1", "(1).real", "[1, 2]", "abs(-1)", "'a' * 3", "1 if 1 else 2"],
    )
    def test_rejects_anything_but_numbers_and_operators(self, expression: str) -> None:
        """Names, calls, attribute access, strings and containers are refused."""
        with pytest.raises(ValueError, match="only numbers"):
            evaluate(expression)

    def test_rejects_huge_exponents(self) -> None:
        """An exponent beyond MAX_EXPONENT is refused instead of pinning the CPU."""
        with pytest.raises(ValueError, match="exponent too large"):
            evaluate(f"9 ** {MAX_EXPONENT + 1}")

    def test_rejects_nested_huge_exponents(self) -> None:
        """`9 ** 9 ** 9` is refused (the inner power already exceeds the limit)."""
        with pytest.raises(ValueError, match="exponent too large"):
            evaluate("9 ** 9 ** 9")


class TestCalculateTool:
    async def test_returns_the_expression_and_its_value(self) -> None:
        """The tool reports `expression = value`, integers without a decimal point."""
        assert await invoke(calculate, expression="12 * (3 + 4)") == "12 * (3 + 4) = 84"

    async def test_reports_division_by_zero_as_text(self) -> None:
        """Division by zero becomes a message for the model, not an exception."""
        assert "Cannot calculate" in await invoke(calculate, expression="1 / 0")

    async def test_schema_rejects_non_arithmetic_input(self) -> None:
        """The argument pattern refuses non-arithmetic text before evaluation (generic error)."""
        output = await invoke(calculate, expression="__import__('os')")
        assert output == "An error occurred while running the tool. Please try again."


class TestRefundPolicy:
    @pytest.mark.parametrize(
        ("days", "refund"), [(0, 100.0), (30, 100.0), (31, 50.0), (90, 50.0), (91, 0.0)]
    )
    def test_full_then_half_then_nothing(self, days: int, refund: float) -> None:
        """Full refund up to 30 days, half up to 90, nothing after."""
        assert refund_amount(100.0, days) == refund

    def test_rounds_to_cents(self) -> None:
        """Refunds are rounded to two decimals."""
        assert refund_amount(10.01, 45) == 5.0

    async def test_quote_tool_states_the_refund(self) -> None:
        """The refund_quote tool states amount, age and refund."""
        output = await invoke(refund_quote, amount=40, days_since_purchase=45)
        assert "40.00" in output and "20.00" in output


class TestLookupError:
    async def test_explains_a_known_code(self) -> None:
        """A known error code returns its explanation."""
        assert "Rate limited" in await invoke(lookup_error, code="E300")

    async def test_says_so_for_an_unknown_code(self) -> None:
        """An unknown code says it is unknown."""
        assert "Unknown error code" in await invoke(lookup_error, code="E999")


class TestCatalog:
    def test_lists_the_four_agents(self) -> None:
        """The catalog serves triage, assistant, billing and tech_support."""
        assert set(catalog()) == {"triage", "assistant", "billing", "tech_support"}

    def test_unknown_agent_is_not_found(self) -> None:
        """Asking for an agent that is not in the catalog raises NotFound."""
        with pytest.raises(NotFound):
            get_agent("nope")

    def test_agents_are_built_once(self) -> None:
        """The same agent object is returned for the same name."""
        assert get_agent("triage") is get_agent("triage")

    def test_triage_hands_off_to_both_specialists(self) -> None:
        """Triage's handoffs are billing and tech_support."""
        names = [getattr(h, "name", None) for h in get_agent("triage").handoffs]
        assert names == ["billing", "tech_support"]
