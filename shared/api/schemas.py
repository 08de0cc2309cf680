"""Request and response bodies of the HTTP API, validated with pydantic."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.core.settings import get_settings


class AgentRunRequest(BaseModel):
    """Body of `POST /api/agents/{agent}/runs`: the user's message and, to continue, a thread."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, description="The user's message.")
    thread_id: uuid.UUID | None = Field(
        None, description="Continue this thread; omit for a new one."
    )

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str) -> str:
        limit = get_settings().max_input_chars
        if len(value) > limit:
            raise ValueError(f"input may be at most {limit} characters")
        if not value.strip():
            raise ValueError("input must not be blank")
        if "\x00" in value:  # Postgres text cannot hold NUL: refuse it here, not with a 500
            raise ValueError("input must not contain NUL characters")
        return value


class Usage(BaseModel):
    """Model usage of one run."""

    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int

    @classmethod
    def zero(cls) -> Usage:
        """No usage (a run that never called its model)."""
        return cls(requests=0, input_tokens=0, output_tokens=0, total_tokens=0)


class Interrupt(BaseModel):
    """A review a paused run waits for (decide it at `POST /api/reviews/{review_id}/decision`)."""

    review_id: str
    kind: str = Field(description="`tool` (a tool call to approve) or `output` (an answer).")
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    reason: str | None = None


class AgentRunResponse(BaseModel):
    """What a run returns: its answer, or why it stopped (paused for review, cancelled)."""

    run_id: str
    thread_id: str
    agent: str
    last_agent: str
    status: str = Field(
        description="`success`, or `interrupted`: paused for review (see `interrupts`) or "
        "cancelled (`cancel_reason`)."
    )
    output: str
    usage: Usage
    cancel_reason: str | None = None
    interrupts: list[Interrupt] = Field(default_factory=list)


class AgentInfo(BaseModel):
    """One entry of `GET /api/agents`."""

    name: str
    description: str


class ThreadMessages(BaseModel):
    """A thread's history as Agents SDK items (messages, tool calls and tool outputs)."""

    thread_id: str
    items: list[dict[str, Any]]


class AgentList(BaseModel):
    """Body of `GET /api/agents`: the catalog."""

    agents: list[AgentInfo]


class HealthReport(BaseModel):
    """Body of `GET /api/health`: overall status, model provider and per-backend checks."""

    status: str = Field(description="`ok` when every backend answers, else `degraded`.")
    model_provider: str
    checks: dict[str, str]
