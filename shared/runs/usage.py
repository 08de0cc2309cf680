"""Estimated cost of tokens: USD per 1k input and output tokens per model.

`PRICES` is a built-in table of list prices (estimates: check your provider's current price
list and contract); ASCENT_MODEL_PRICES, a JSON object `{"model": {"input": 0.4, "output":
1.6}}` in USD per 1k tokens, adds or overrides models. A model missing from both costs 0 and is
logged once, so a roll-up never fails on an unknown model. The offline model is free.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from shared.agents.configured import bound_of
from shared.core.settings import get_settings
from shared.db.models import Run
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


COUNTERS = ("runs", "requests", "input_tokens", "output_tokens", "total_tokens")


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    """What usage is counted by: a UTC day (`YYYY-MM-DD`), an agent and its assistant ('')."""

    day: str
    agent: str
    assistant_id: str


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def count_runs(
    connection: AsyncConnection, tenant_id: str, start: datetime, end: datetime
) -> dict[UsageKey, dict[str, int]]:
    """Sum a tenant's runs created in [start, end) by day, agent and assistant."""
    rows = await connection.execute(
        select(
            col(Run.agent),
            col(Run.config),
            col(Run.created_at),
            col(Run.requests),
            col(Run.input_tokens),
            col(Run.output_tokens),
            col(Run.total_tokens),
        ).where(
            col(Run.tenant_id) == tenant_id,
            col(Run.created_at) >= start,
            col(Run.created_at) < end,
        )
    )
    totals: dict[UsageKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for agent, config, created, requests, input_tokens, output_tokens, total_tokens in rows:
        bound = bound_of(config)
        key = UsageKey(
            day=_aware(created).astimezone(UTC).date().isoformat(),
            agent=agent,
            assistant_id=bound[0] if bound else "",
        )
        row = totals[key]
        row["runs"] += 1
        row["requests"] += requests
        row["input_tokens"] += input_tokens
        row["output_tokens"] += output_tokens
        row["total_tokens"] += total_tokens
    return dict(totals)
