"""Queue triggers for background runs: `agent-runs` executes a run, its poison queue fails it.

Thin handlers: parse the message and call the run service. A failure re-raises, so the
platform (the Functions host in Azure, the dev host locally) makes the message visible again
after host.json `visibilityTimeout` and, after `maxDequeueCount` tries, moves it to
`agent-runs-poison`. The Functions host only moves the message; marking its run `error` is the
poison-queue trigger's job, so it works the same in Azure and on the dev host.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.platform.queues import RUNS_QUEUE, poison_queue_name
from shared.runs.dispatch import parse_run_message
from shared.runs.service import execute_message, fail_dead_lettered

log = logging.getLogger(__name__)

bp = func.Blueprint()

POISONED = f"the run's message failed repeatedly and was moved to {poison_queue_name(RUNS_QUEUE)}"


@bp.function_name("agent_runs")
@bp.queue_trigger(arg_name="msg", queue_name=RUNS_QUEUE, connection="AzureWebJobsStorage")
async def agent_runs(msg: func.QueueMessage) -> None:
    """Execute the run a message names (a duplicate or finished run is acknowledged)."""
    job = parse_run_message(msg.get_body())
    await execute_message(job.run_id, job.tenant_id, job.traceparent)


@bp.function_name("agent_runs_poison")
@bp.queue_trigger(
    arg_name="msg", queue_name=poison_queue_name(RUNS_QUEUE), connection="AzureWebJobsStorage"
)
async def agent_runs_poison(msg: func.QueueMessage) -> None:
    """Mark the run of a dead-lettered message `error`, unless a live worker holds it."""
    try:
        job = parse_run_message(msg.get_body())
    except ValueError:
        log.error("poison message %s is not a run message; dropped", msg.id)
        return
    marked = await fail_dead_lettered(job.run_id, tenant_id=job.tenant_id, reason=POISONED)
    log.error("run %s dead-lettered (marked error: %s)", job.run_id, marked)
