"""The run context every tool and dynamic instruction receives: whose run this is, and where.

The run engine passes a `RunContext` to the Agents SDK (`Runner.run_streamed(...,
context=...)`), so a tool reads it as `RunContextWrapper.context`: the memory tools scope
memories by tenant and user, approval checks and side-effect records by thread and run.

A tool reports progress with `emit_progress(ctx, data)`: a `custom` event of the run, streamed
live to clients that asked for `stream_mode="custom"` and stored with the run's other events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Largest progress payload a tool may emit (JSON characters): events are stored per run.
MAX_PROGRESS_CHARS = 16_384

# Where each run executing in this process records a tool's progress, by run id (set by the
# run engine for the run's duration). Kept outside RunContext so the context stays plain data:
# the SDK serializes it with a paused run's state.
_PROGRESS: dict[str, Callable[[Any], None]] = {}


@dataclass(frozen=True, slots=True)
class RunContext:
    """Tenant and user of a run (who asked: a user, else an API key id), its thread and id."""

    tenant_id: str
    user_id: str
    thread_id: str | None = None
    run_id: str | None = None


@contextmanager
def progress_sink(run_id: str, sink: Callable[[Any], None]) -> Iterator[None]:
    """Send the progress tools of run `run_id` emit to `sink` while the block runs."""
    _PROGRESS[run_id] = sink
    try:
        yield
    finally:
        _PROGRESS.pop(run_id, None)


def emit_progress(context: Any, data: Any) -> bool:
    """Emit a `custom` stream event from a tool: `context` is the tool's RunContextWrapper (or
    its RunContext), `data` any JSON value. False when the run has no event stream (a tool
    called outside a served run); ValueError when `data` is not JSON or too large."""
    run_context = getattr(context, "context", context)
    run_id = getattr(run_context, "run_id", None)
    try:
        size = len(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise ValueError("progress data must be JSON") from exc
    if size > MAX_PROGRESS_CHARS:
        raise ValueError(f"progress data may be at most {MAX_PROGRESS_CHARS} JSON characters")
    sink = _PROGRESS.get(run_id) if isinstance(run_id, str) else None
    if sink is None:
        return False
    sink(data)
    return True
