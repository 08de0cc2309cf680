"""Where pending runs go to be executed: the one seam between accepting work and doing it.

`enqueue_run(run, inline=...)` is called (by shared/runs/service.py) after a run is persisted
`pending` (background runs, crons, runs resumed after a human decision, runs the lease sweeper
recovers). QUEUE_BACKEND picks the carrier:

- `embedded` (default) and `azure`: a message `{"run_id", "tenant_id"}` (and `traceparent`, the
  W3C trace context of the enqueue, when telemetry is on) on the `agent-runs`
  queue (the SQL-backed embedded queue, or Azure Storage Queues / Azurite), encoded per host.json
  `messageEncoding`; the queue-triggered function `functions/runs_queue.py` hands it to
  `shared.runs.service.execute_message` on whichever instance receives it. A run with
  `not_before` in the future is sent with that delay as its initial invisibility (capped at
  the 7-day maximum).
- `inline`: an asyncio task on this instance running the executor the caller hands over (no
  queue, one process; a crash strands the run until the `sweep_leases` job re-enqueues it).
  Kept for embedded single-process use and tests.

Delivery is at least once: executing is idempotent (compare-and-set claims and a lease),
so a duplicate message is acknowledged without a second execution.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from shared.core.settings import get_settings
from shared.db.models import Run, utcnow
from shared.db.views import aware
from shared.platform import observability
from shared.platform.queues import MAX_VISIBILITY_SECONDS, RUNS_QUEUE, get_queue_backend, send_text

# What executes a run message: shared.runs.service.execute_message, handed in by the caller.
Executor = Callable[[str, str], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class RunMessage:
    """The body of an `agent-runs` message: which run, of which tenant, in which trace."""

    run_id: str
    tenant_id: str
    traceparent: str | None = None

    def to_json(self) -> str:
        """The message text (JSON)."""
        body = {"run_id": self.run_id, "tenant_id": self.tenant_id}
        if self.traceparent:
            body["traceparent"] = self.traceparent
        return json.dumps(body)


def parse_run_message(body: bytes | str) -> RunMessage:
    """Parse a message body; ValueError when it is not a run message (the trigger re-raises)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError("agent-runs message is not JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("agent-runs message is not a JSON object")
    run_id, tenant_id = data.get("run_id"), data.get("tenant_id")
    if not isinstance(run_id, str) or not isinstance(tenant_id, str) or not run_id or not tenant_id:
        raise ValueError("agent-runs message needs string run_id and tenant_id")
    carried = data.get("traceparent")
    # A malformed trace context only loses the link to the enqueuing trace, never the run.
    parent = carried if isinstance(carried, str) and len(carried) <= 128 else None
    return RunMessage(run_id=run_id, tenant_id=tenant_id, traceparent=parent)


_ENSURED: set[tuple[int, str]] = set()


async def enqueue_run(run: Run, *, inline: Executor) -> None:
    """Hand a persisted pending run to an executor (idempotent: a duplicate is acknowledged).

    `inline` executes it on this instance when QUEUE_BACKEND=inline.
    """
    backend = get_settings().queue_backend
    with observability.span(
        f"{RUNS_QUEUE} publish",
        kind=observability.SpanKind.PRODUCER,
        attributes={
            "messaging.operation.type": "send",
            "messaging.destination.name": RUNS_QUEUE,
            "messaging.system": backend,
            "ascent.run.id": run.id,
        },
    ):
        if backend == "inline":
            # The task copies this context: the run's span is this one's child.
            spawn(inline(run.id, run.tenant_id))
            return
        delay = 0
        if run.not_before is not None:
            remaining = (aware(run.not_before) - utcnow()).total_seconds()
            delay = min(MAX_VISIBILITY_SECONDS, max(0, math.ceil(remaining)))
        message = RunMessage(
            run_id=run.id, tenant_id=run.tenant_id, traceparent=observability.traceparent()
        )
        await send_run_message(message, delay_seconds=delay)


# Tasks this instance runs in the background; referenced so the event loop does not drop them.
_TASKS: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run `coro` in the background on this instance, kept referenced until it ends."""
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


async def wait_for_background() -> None:
    """Wait until this instance's background runs and bookkeeping have ended.

    A one-shot process (an ACA job that enqueued runs with QUEUE_BACKEND=inline) calls it
    before exiting, so it does not strand the runs it started.
    """
    while _TASKS:
        await asyncio.gather(*list(_TASKS), return_exceptions=True)


async def send_run_message(message: RunMessage, *, delay_seconds: int = 0) -> None:
    """Put a run message on `agent-runs` (creating the queue once per process and backend)."""
    backend = get_queue_backend()
    key = (id(backend), RUNS_QUEUE)
    if key not in _ENSURED:
        await backend.ensure_queue(RUNS_QUEUE)
        _ENSURED.add(key)
    await send_text(RUNS_QUEUE, message.to_json(), delay_seconds=delay_seconds)
