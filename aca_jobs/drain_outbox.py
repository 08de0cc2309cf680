"""The `drain_outbox` job (every minute): publish due domain events and deliver due webhooks.

The request path drains right after each commit (best effort); this job picks up whatever that
left: events whose publish failed (broker down), webhooks waiting for their retry, events of a
process that stopped before draining. Several drainers may run at once: rows are claimed by
compare-and-set. On ACA the job has no Dapr sidecar, so it runs with ASCENT_EVENTS_PUBLISH=off
and only delivers webhooks (see shared/outbox/events.py).
"""

from __future__ import annotations

import asyncio
import logging

from aca_jobs.steps import handled
from shared.db.direct import aclose_direct
from shared.db.engine import get_engine
from shared.outbox.drain import drain
from shared.outbox.events import DrainReport

log = logging.getLogger(__name__)


def main() -> int:
    """Drain once; exit 0 (failed attempts stay in the tables for the next run)."""

    async def run() -> DrainReport:
        try:
            return await drain()
        finally:
            await get_engine().dispose()
            await aclose_direct()

    report = asyncio.run(run())
    handled(report.published + report.webhooks_delivered)
    log.info(
        "published %d (%d failed), webhooks delivered %d (%d failed)",
        report.published,
        report.publish_failures,
        report.webhooks_delivered,
        report.webhook_failures,
    )
    return 0
