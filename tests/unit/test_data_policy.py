"""The tenant data policy's checks on text and input items (shared/security/data_policy.py)."""

from __future__ import annotations

import pytest

from shared.core.errors import GuardrailTripped
from shared.security.data_policy import PolicyPattern, compile_policy

CARD = "4111 1111 1111 1111"
ORDER = PolicyPattern(name="order_no", regex=r"ORD-\d{6}")


def test_redact_replaces_every_match_of_every_rule() -> None:
    """Each card number and each tenant pattern match becomes its rule's marker."""
    policy = compile_policy("redact", [ORDER])
    text = f"{CARD} and 4242-4242-4242-4242 for ORD-123456"
    assert policy.check(text) == (
        "[REDACTED:no_card_numbers] and [REDACTED:no_card_numbers] for [REDACTED:order_no]"
    )


def test_refuse_names_the_rule() -> None:
    """Refusal raises the guardrail problem naming the rule that matched."""
    with pytest.raises(GuardrailTripped) as caught:
        compile_policy("refuse", [ORDER]).check("ORD-000001")
    assert caught.value.extra == {"guardrail": "order_no"}


def test_items_of_every_role_and_tool_outputs_are_checked() -> None:
    """User and assistant text (plain or in parts) and tool outputs are redacted; other fields
    (ids, roles) are left as they are."""
    policy = compile_policy("redact", [])
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": CARD}]},
        {"role": "assistant", "content": f"card {CARD}"},
        {"type": "function_call_output", "call_id": "4111111111111111", "output": CARD},
    ]
    checked = policy.check_items(items)
    assert checked == [
        {"role": "user", "content": [{"type": "input_text", "text": "[REDACTED:no_card_numbers]"}]},
        {"role": "assistant", "content": "card [REDACTED:no_card_numbers]"},
        {
            "type": "function_call_output",
            "call_id": "4111111111111111",
            "output": "[REDACTED:no_card_numbers]",
        },
    ]


def test_off_checks_nothing() -> None:
    """`off` leaves card numbers and patterns alone (agent guardrails still apply)."""
    assert compile_policy("off", [ORDER]).check(f"{CARD} ORD-123456") == f"{CARD} ORD-123456"


def test_numbers_failing_luhn_are_not_card_numbers() -> None:
    """A 16-digit number that fails the Luhn checksum is kept."""
    assert compile_policy("refuse", []).check("4111 1111 1111 1112") == "4111 1111 1111 1112"
