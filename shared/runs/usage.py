"""Estimated cost of tokens: USD per 1k input and output tokens per model.

`PRICES` is a built-in table of list prices (estimates: check your provider's current price
list and contract); ASCENT_MODEL_PRICES, a JSON object `{"model": {"input": 0.4, "output":
1.6}}` in USD per 1k tokens, adds or overrides models. A model missing from both costs 0 and is
logged once, so a roll-up never fails on an unknown model. The offline model is free.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache

from shared.core.settings import get_settings
from shared.platform.offline_model import OFFLINE_MODEL_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1k input tokens and per 1k output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The estimated cost of this many tokens, in USD."""
        return (input_tokens * self.input + output_tokens * self.output) / 1000.0


PRICES: dict[str, Price] = {
    OFFLINE_MODEL_NAME: Price(0.0, 0.0),
    "gpt-4.1": Price(0.002, 0.008),
    "gpt-4.1-mini": Price(0.0004, 0.0016),
    "gpt-4.1-nano": Price(0.0001, 0.0004),
    "gpt-4o": Price(0.0025, 0.01),
    "gpt-4o-mini": Price(0.00015, 0.0006),
}


@lru_cache(maxsize=8)
def _parse(raw: str | None) -> dict[str, Price]:
    if not raw:
        return {}
    try:
        table = json.loads(raw)
        return {
            str(model): Price(float(p["input"]), float(p["output"])) for model, p in table.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(
            'ASCENT_MODEL_PRICES must be JSON like {"model": {"input": 0.4, "output": 1.6}}'
        ) from None


def price_table() -> dict[str, Price]:
    """The built-in prices with ASCENT_MODEL_PRICES merged over them."""
    return {**PRICES, **_parse(get_settings().model_prices)}


def price_of(model: str) -> Price:
    """The price of a model (0 when unknown, with a warning)."""
    found = price_table().get(model)
    if found is None:
        log.warning("no price for model %r: its cost is counted as 0", model)
        return Price(0.0, 0.0)
    return found


def current_model() -> str:
    """The model runs use under the current settings (the offline model's name when offline)."""
    settings = get_settings()
    return OFFLINE_MODEL_NAME if settings.model_provider == "offline" else settings.model_name
