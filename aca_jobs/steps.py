"""What every job shares: run an async body on the configured database, and report steps.

A job does its work in steps, each committed on its own (one tenant, one batch, one thread,
one cron), so a replica killed at any point leaves only whole steps behind and the next run
continues from the database's state. `step_done` logs each committed step.

Test hook: when the environment variable ASCENT_JOB_STEP_PAUSE names a file, the job waits
after each committed step for as long as that file exists. Tests use it to kill a job between
two steps deterministically (they watch the database for the first step, then SIGKILL); it
is not a setting and no deployment sets it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from shared.db.direct import aclose_direct
from shared.db.engine import get_engine
from shared.platform.llm import aclose_model_clients

log = logging.getLogger("aca_jobs")

STEP_PAUSE_ENV = "ASCENT_JOB_STEP_PAUSE"
_PAUSE_POLL_SECONDS = 0.05


# What the job's body returned, when a count (read by `python -m aca_jobs` for its metrics).
ROWS: list[int] = []


def handled(count: int) -> None:
    """Report how many rows or items this job run handled (its `ascent.job.rows` metric)."""
    ROWS.append(count)


def run_job(body: Callable[[], Awaitable[object]]) -> int:
    """Run a job's async body to completion in a fresh event loop; exit code 0 when it returns.

    The engine is disposed at the end so the process exits without pooled connections.
    """

    async def main() -> None:
        try:
            result = await body()
            if isinstance(result, int) and not isinstance(result, bool):
                ROWS.append(result)  # the rows or items the job handled (its metric)
        finally:
            await get_engine().dispose()
            await aclose_direct()
            await aclose_model_clients()

    asyncio.run(main())
    return 0


async def step_done(job: str, what: str) -> None:
    """Record that a step of `job` was committed (and honour the test pause hook)."""
    log.info("job %s: %s", job, what)
    pause = os.environ.get(STEP_PAUSE_ENV)
    if pause:
        flag = Path(pause)
        while await asyncio.to_thread(flag.exists):  # noqa: ASYNC110 - a file flag, polled
            await asyncio.sleep(_PAUSE_POLL_SECONDS)
