"""How stored rows look to the outside: UTC timestamps and the run's public JSON shape.

`run_json` is the one rendering of a run (Agent Protocol's `Run` with LangGraph's field names
alongside): the API answers it, and a run's webhook POSTs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db.models import Run
from shared.db.types import as_utc


def iso(moment: datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp, or None."""
    return as_utc(moment).isoformat() if moment is not None else None


def public_thread_id(run: Run) -> str | None:
    """The run's thread as clients see it: None for a stateless run, whose thread is the
    engine's own and is deleted when the run ends (so every answer about the run agrees)."""
    return None if run.on_completion == "delete" else run.thread_id


def assistant_of(run: Run) -> str:
    """The assistant a run ran: the one its config records (shared/agents/configured.py), else
    its catalog agent (whose default assistant the graph name also names)."""
    configurable = (run.config or {}).get("configurable")
    found = configurable.get("assistant_id") if isinstance(configurable, dict) else None
    return found if isinstance(found, str) else run.agent


def run_json(run: Run) -> dict[str, Any]:
    """A run in Agent Protocol shape, with LangGraph's field names alongside."""
    cancelled = run.error == "cancelled"
    return {
        "run_id": run.id,
        "thread_id": public_thread_id(run),
        "agent_id": run.agent,
        "assistant_id": assistant_of(run),
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at or run.created_at),
        "status": run.status,
        "metadata": run.metadata_ or {},
        "multitask_strategy": run.multitask_strategy or "reject",
        "kwargs": {
            "config": run.config or {},
            "webhook": run.webhook,
            "on_completion": run.on_completion,
            "on_disconnect": run.on_disconnect,
            "stream_mode": run.stream_mode,
        },
        "output": run.output,
        "error": None if cancelled else run.error,
        "cancel_reason": "cancelled" if cancelled else None,
        "usage": {
            "requests": run.requests,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "total_tokens": run.total_tokens,
        },
    }
