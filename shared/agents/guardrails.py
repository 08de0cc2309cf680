"""Input guardrails shared by the catalog's entry agents."""

from __future__ import annotations

import re
from typing import Any

from agents import Agent, GuardrailFunctionOutput, RunContextWrapper, input_guardrail
from agents.items import TResponseInputItem

# 13 to 19 digits, optionally grouped by spaces or dashes: the shape of a payment card number.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    """Return True when the digits pass the Luhn checksum that card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_card_number(text: str) -> bool:
    """Return True when the text contains a Luhn-valid payment card number."""
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


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
