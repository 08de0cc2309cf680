"""Input guardrails shared by the catalog's entry agents."""

from __future__ import annotations

from typing import Any

from agents import Agent, GuardrailFunctionOutput, RunContextWrapper, input_guardrail
from agents.items import TResponseInputItem

from shared.core.sensitive import card_spans, luhn_valid

__all__ = ["find_card_number", "luhn_valid", "no_card_numbers"]


def find_card_number(text: str) -> bool:
    """Return True when the text contains a Luhn-valid payment card number."""
    return bool(card_spans(text))


def _input_text(value: str | list[TResponseInputItem]) -> str:
    """The newest user message: with a session the SDK passes the whole history, and a tool
    output that merely looks like a card number must not block every later turn."""
    if isinstance(value, str):
        return value
    for item in reversed(value):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content: Any = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    return ""


@input_guardrail(name="no_card_numbers")
async def no_card_numbers(
    ctx: RunContextWrapper[Any], agent: Agent[Any], value: str | list[TResponseInputItem]
) -> GuardrailFunctionOutput:
    """Refuse input that carries a payment card number (PCI data must not reach the model)."""
    found = find_card_number(_input_text(value))
    return GuardrailFunctionOutput(
        output_info={"reason": "payment card number in input"} if found else None,
        tripwire_triggered=found,
    )
