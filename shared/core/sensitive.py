"""Payment card numbers in text: found by shape and the Luhn checksum.

One detector for every place that must not keep a card number: the platform data policy
(shared/security/data_policy.py), the per-agent `no_card_numbers` guardrail
(shared/agents/guardrails.py) and log redaction (shared/core/telemetry.py).
"""

from __future__ import annotations

import re

# 13 to 19 digits, optionally grouped by spaces or dashes: the shape of a payment card number.
CARD_SHAPE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    """Return True when the digits pass the Luhn checksum that card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every Luhn-valid card number in the text, in order."""
    found: list[tuple[int, int]] = []
    for match in CARD_SHAPE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(match.span())
    return found


def redact_cards(text: str, replacement: str) -> str:
    """The text with every Luhn-valid card number replaced."""
    spans = card_spans(text)
    for start, end in reversed(spans):
        text = text[:start] + replacement + text[end:]
    return text
