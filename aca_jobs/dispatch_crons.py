"""The `dispatch_crons` job: fire the user crons that are due (shared/runs/crons.py).

Every minute it creates one pending run per due occurrence through the Agent Protocol run path
and hands it to `shared.runs.dispatch.enqueue_run`. Exactly once per occurrence, even with two
replicas at once or a replica killed halfway: the claim is a compare-and-set on
(cron_id, next_run_at) in the same transaction as the run and the (cron_id, scheduled_for)
unique key. Missed occurrences: the latest fires once, older ones are skipped. It first
enqueues runs of fires a crashed replica committed but never enqueued.
"""

from __future__ import annotations

from aca_jobs.steps import run_job, step_done
from shared.runs.crons import Fired, dispatch_due, recover_unenqueued
from shared.runs.dispatch import wait_for_background

NAME = "dispatch_crons"
SCHEDULE = "* * * * *"


async def _report(fired: Fired) -> None:
    await step_done(
        NAME,
        f"cron {fired.cron_id} fired for {fired.scheduled_for.isoformat()} "
        f"(run {fired.run_id}, skipped {fired.skipped})",
    )


async def dispatch() -> int:
    """Recover un-enqueued fires, fire due crons, wait for any in-process runs; fires made."""
    await recover_unenqueued()
    fired = await dispatch_due(on_fired=_report)
    # With QUEUE_BACKEND=inline the runs execute in this process: finish them before exiting.
    await wait_for_background()
    return len(fired)


def main() -> int:
    """Fire the due crons once; exit 0 when done."""
    return run_job(dispatch)
