"""The run context every tool and dynamic instruction receives: whose run this is, and where.

The run engine passes a `RunContext` to the Agents SDK (`Runner.run_streamed(...,
context=...)`), so a tool reads it as `RunContextWrapper.context`: the memory tools scope
memories by tenant and user, approval checks and side-effect records by thread and run.

A tool reports progress with `emit_progress(ctx, data)`: a `custom` event of the run, streamed
live to clients that asked for `stream_mode="custom"` and stored with the run's other events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Largest progress payload a tool may emit (JSON characters): events are stored per run.
MAX_PROGRESS_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class RunContext:
    """Tenant and user of a run (who asked: a user, else an API key id), its thread and id."""

    tenant_id: str
    user_id: str
    thread_id: str | None = None
    run_id: str | None = None
    # Records a `custom` event on the run (set by the run engine; None outside a served run).
    progress: Callable[[Any], None] | None = field(default=None, compare=False, repr=False)


def emit_progress(context: Any, data: Any) -> bool:
    """Emit a `custom` stream event from a tool: `context` is the tool's RunContextWrapper (or
    its RunContext), `data` any JSON value. False when the run has no event stream (a tool
    called outside a served run); ValueError when `data` is not JSON or too large."""
    run_context = getattr(context, "context", context)
    sink = getattr(run_context, "progress", None)
    try:
        size = len(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise ValueError("progress data must be JSON") from exc
    if size > MAX_PROGRESS_CHARS:
        raise ValueError(f"progress data may be at most {MAX_PROGRESS_CHARS} JSON characters")
    if sink is None:
        return False
    sink(data)
    return True
