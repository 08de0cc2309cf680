"""The `sweep_leases` job (every minute): recover runs whose executor died or message was lost.

The logic is the run engine's (shared/runs/service.py `sweep`). Stranded runs are found in SQL
(the queue cannot be asked whether a message for a run still exists, so the sweeper relies on
duplicates being harmless: executing a run is idempotent):

- `running` runs whose lease lapsed (ASCENT_RUN_LEASE_SECONDS without a heartbeat) lost their
  executor. One that ran inside a request whose client asked to cancel on disconnect (the
  simple route, OpenAI chat completions, `/runs/wait` and `/runs/stream` by default) is ended
  `error`, its thread freed: its client is gone with the executor. Any other (a background
  run, a resumed one, `on_disconnect: continue`) gets a fresh queue message, and the next
  executor takes it over by compare-and-set on the lapsed lease.
- `pending` runs, due, untouched for ASCENT_SWEEP_PENDING_AFTER_SECONDS (default 15 min, more
  than the Functions host's 10-minute message lease): their message was lost (e.g. a crash
  between the commit and the send, or QUEUE_BACKEND=inline and the process died).

Concurrent sweepers touch `updated_at` by compare-and-set before acting, so each stranded run
is recovered once per interval. With QUEUE_BACKEND=inline there is no queue to send to: the
job executes the runs itself before exiting.
"""

from __future__ import annotations

import asyncio
import logging

from aca_jobs.steps import handled
from shared.db.direct import aclose_direct
from shared.db.engine import get_engine
from shared.platform.queues import close_queue_backend
from shared.runs.dispatch import wait_for_background
from shared.runs.service import SweepReport, sweep

log = logging.getLogger(__name__)

__all__ = ["SweepReport", "main", "sweep"]


def main() -> int:
    """Sweep once; exit 0."""

    async def run() -> SweepReport:
        try:
            report = await sweep()
            await wait_for_background()
            return report
        finally:
            await close_queue_backend()
            await get_engine().dispose()
            await aclose_direct()

    report = asyncio.run(run())
    handled(len(report.expired) + len(report.ended) + len(report.stale_pending))
    log.info(
        "re-enqueued %d run(s) with a lapsed lease, ended %d whose client went with their "
        "executor, re-enqueued %d stale pending run(s)",
        len(report.expired),
        len(report.ended),
        len(report.stale_pending),
    )
    return 0
