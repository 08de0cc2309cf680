"""The `sweep_leases` job (every minute): re-enqueue runs whose worker died or message was lost.

Two kinds of stranded run, both found in SQL (the queue cannot be asked whether a message for a
run still exists, so the sweeper relies on duplicates being harmless: `execute_run` is
idempotent):

- `running` runs whose execution lease lapsed (ASCENT_RUN_LEASE_SECONDS without a heartbeat):
  their worker died. A fresh message lets the next worker take the run over (compare-and-set on
  the lapsed lease); normally the original message reappears by itself after the queue's
  visibility timeout, so the sweeper only matters when that message was lost or poisoned.
- `pending` runs, due, untouched for ASCENT_SWEEP_PENDING_AFTER_SECONDS (default 15 min, more
  than the Functions host's 10-minute message lease): their message was lost (e.g. a crash
  between the commit and the send, or QUEUE_BACKEND=inline and the process died). The sweeper
  touches `updated_at` by compare-and-set before sending, so concurrent sweepers send one
  message per interval, not one each. A run legitimately waiting behind another on its thread
  also gets a message each interval; its handler waits its turn like the first one.

With QUEUE_BACKEND=inline there is no queue to send to: the job executes the runs itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.models import utcnow
from shared.dispatch import RunMessage, send_run_message
from shared.queues import close_queue_backend
from shared.runs import execute_run
from shared.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep re-enqueued."""

    expired: list[str]
    stale_pending: list[str]


async def sweep() -> SweepReport:
    """Find stranded runs and hand each to an executor once; return their ids."""
    settings = get_settings()
    older_than = utcnow() - timedelta(seconds=settings.sweep_pending_after_seconds)
    expired: list[str] = []
    stale: list[str] = []
    async with db_session() as db:
        lapsed = list(await repo.expired_leases(session=db))
        waiting = list(await repo.stale_pending_runs(session=db, older_than=older_than))
    for run in lapsed:
        async with db_session() as db:
            # Touch it so a concurrent sweeper skips it this round (the lease stays lapsed).
            if not await repo.touch_run(session=db, run_id=run.id, seen=run.updated_at):
                continue
            await db.commit()
        expired.append(run.id)
        await _hand_over(run.id, run.tenant_id)
    for run in waiting:
        async with db_session() as db:
            if not await repo.touch_run(session=db, run_id=run.id, seen=run.updated_at):
                continue
            await db.commit()
        stale.append(run.id)
        await _hand_over(run.id, run.tenant_id)
    return SweepReport(expired=expired, stale_pending=stale)


async def _hand_over(run_id: str, tenant_id: str) -> None:
    if get_settings().queue_backend == "inline":
        await execute_run(run_id, tenant_id=tenant_id)
        return
    await send_run_message(RunMessage(run_id=run_id, tenant_id=tenant_id))


def main() -> int:
    """Sweep once; exit 0."""

    async def run() -> SweepReport:
        try:
            return await sweep()
        finally:
            await close_queue_backend()
            await get_engine().dispose()

    report = asyncio.run(run())
    log.info(
        "re-enqueued %d run(s) with a lapsed lease and %d stale pending run(s)",
        len(report.expired),
        len(report.stale_pending),
    )
    return 0
