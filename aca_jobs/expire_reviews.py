"""The `expire_reviews` job (every 5 minutes): reject human reviews past their expiry.

`shared.runs.reviews.expire_due_reviews()` marks pending reviews whose `expires_at`
(ASCENT_REVIEW_TTL_SECONDS after the request) has passed `expired` and ends their runs with
status `error` and error "review expired"; the paused tool never runs and a late decision gets
409. Several instances may run at once: reviews and runs move by compare-and-set.
"""

from __future__ import annotations

import asyncio
import logging

from aca_jobs.steps import handled
from shared.db.direct import aclose_direct
from shared.db.engine import get_engine
from shared.runs.reviews import expire_due_reviews

log = logging.getLogger(__name__)


def main() -> int:
    """Expire due reviews once; exit 0."""

    async def run() -> int:
        try:
            return await expire_due_reviews()
        finally:
            await get_engine().dispose()
            await aclose_direct()

    expired = asyncio.run(run())
    handled(expired)
    log.info("expired %d reviews", expired)
    return 0
