"""Following a run from anywhere: its stored events, then the live tail, woken by pushes.

`follow(tenant, run, after)` yields a run's events after a seq until the execution's `end`:

- on the instance executing the run, from its `LiveRun` (shared/runs/live.py), as emitted;
- elsewhere, from `run_events`, re-read whenever a notification says more were stored
  (shared/platform/notify.py: LISTEN/NOTIFY or Redis pub/sub), so nothing polls.

`wait_for_end` and the executor's cancel watch use the same wake-ups. Where no notification
channel exists (several processes on one SQLite file without Redis), `RunPoller` is the
fallback, named as such: one query every ASCENT_RUN_POLL_SECONDS for all the runs this
process follows that execute elsewhere, plus one for cancels of the runs it executes, and it
wakes only the waiters whose run changed. Runs executing here are always pushed in-process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from sqlalchemy import bindparam, func, select

from shared.core.services import service
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.platform.notify import Subscription, get_notifier
from shared.runs import live as live_runs
from shared.runs.records import EVENTS, RUNS, TERMINAL, EventRow, run_topic

log = logging.getLogger(__name__)

PAGE: Final = 500


@dataclass(frozen=True)
class RunState:
    """What a watcher compares: status, cancel flag, last stored event."""

    status: str
    cancel_requested: bool
    last_seq: int


_READ_EVENTS = (
    select(EVENTS.c.seq, EVENTS.c.event, EVENTS.c.data)
    .where(
        EVENTS.c.tenant_id == bindparam("tenant_id"),
        EVENTS.c.run_id == bindparam("run_id"),
        EVENTS.c.seq > bindparam("after"),
    )
    .order_by(EVENTS.c.seq)
    .limit(PAGE)
)
_STATUS = select(RUNS.c.status).where(
    RUNS.c.id == bindparam("run_id"), RUNS.c.tenant_id == bindparam("tenant_id")
)


def read_events(tx: Tx, *, tenant_id: str, run_id: str, after: int) -> list[EventRow]:
    """Up to PAGE stored events of a run with seq greater than `after`, in order."""
    params = {"tenant_id": tenant_id, "run_id": run_id, "after": after}
    return [(int(r.seq), str(r.event), r.data) for r in tx.conn.execute(_READ_EVENTS, params)]


def run_status(tx: Tx, *, tenant_id: str, run_id: str) -> str | None:
    """A run's status (None when it does not exist)."""
    found = tx.conn.execute(_STATUS, {"run_id": run_id, "tenant_id": tenant_id}).scalar()
    return str(found) if found is not None else None


@contextmanager
def watch(run_id: str) -> Iterator[Subscription]:
    """Wake-ups for a run while the block runs (pushes; the poll fallback where needed)."""
    notifier = get_notifier()
    with notifier.subscribe(run_topic(run_id)) as subscription:
        poller = None if notifier.channel is not None else get_poller()
        if poller is not None:
            poller.add(run_id)
        try:
            yield subscription
        finally:
            if poller is not None:
                poller.discard(run_id)


def wake_timeout() -> float:
    """How long a watcher sleeps between re-reads when nothing wakes it.

    With a channel, pushes wake it and the keepalive interval is only a safety net (a missed
    message costs that long); under the poll fallback the poller wakes it instead.
    """
    return get_settings().stream_keepalive_seconds


async def follow(*, tenant_id: str, run_id: str, after: int = 0) -> AsyncIterator[EventRow | None]:
    """A run's events after `after`, then new ones as they come, until its execution's `end`.

    Yields None when nothing arrived for ASCENT_STREAM_KEEPALIVE_SECONDS, so the caller can
    keep its connection alive. Returns early when the run is gone.
    """
    keepalive = get_settings().stream_keepalive_seconds
    caught_up = False  # every stored event up to `after` has been read
    with watch(run_id) as wakes:
        while True:
            here = live_runs.live_run(run_id)
            if here is not None and _joinable(here, after, caught_up):
                async for row in _follow_live(here, after, keepalive):
                    yield row
                    if row is None:
                        continue
                    after = row[0]
                    if row[1] == "end":
                        return
                # The execution here stopped without an `end` (it gave up): read the log.
            rows = await direct.read(
                partial(read_events, tenant_id=tenant_id, run_id=run_id, after=after)
            )
            for row in rows:
                after = row[0]
                yield row
                if row[1] == "end":
                    return
            if len(rows) == PAGE:
                continue
            caught_up = True
            if not rows:
                status = await direct.read(
                    lambda tx: run_status(tx, tenant_id=tenant_id, run_id=run_id)
                )
                if status is None:
                    return
            here = live_runs.live_run(run_id)
            if here is not None and not here.ended and not here.events:
                # Executing here but not started (a resume waiting for its turn): its first
                # event wakes this follower in-process. Awaiting it, not re-reading at once,
                # matters: SQLite reads run on the loop and a spin would starve the executor.
                if not await here.started(keepalive):
                    yield None
                continue
            if here is not None and not here.ended and _joinable(here, after, caught_up):
                continue
            if not await wakes.wait(keepalive):
                yield None


def _joinable(here: live_runs.LiveRun, after: int, caught_up: bool) -> bool:
    """Whether a follower at `after` can take the rest from the live run: it holds the next
    event, or it has emitted nothing yet and the follower has read the whole log."""
    return after + 1 >= here.first_seq or (caught_up and not here.events and not here.ended)


async def _follow_live(
    here: live_runs.LiveRun, after: int, keepalive: float
) -> AsyncIterator[EventRow | None]:
    stream = here.follow(after).__aiter__()
    while True:
        nxt = asyncio.ensure_future(anext(stream))
        try:
            while True:
                done, _ = await asyncio.wait({nxt}, timeout=keepalive)
                if done:
                    break
                yield None
            row = nxt.result()
        except StopAsyncIteration:
            return
        finally:
            if not nxt.done():
                nxt.cancel()
                with suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
        yield row


async def wait_for_end(*, tenant_id: str, run_id: str, within: float) -> str | None:
    """Wait until the run is no longer pending or running (or `within` seconds passed); its
    status then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    with watch(run_id) as wakes:
        while True:
            status = await direct.read(
                lambda tx: run_status(tx, tenant_id=tenant_id, run_id=run_id)
            )
            left = deadline - loop.time()
            if status is None or status in TERMINAL or left <= 0:
                return status
            await wakes.wait(min(left, wake_timeout()))


# --- the poll fallback ---------------------------------------------------------------------------


class RunPoller:
    """The fallback where no channel exists: one query per interval wakes changed runs' waiters."""

    def __init__(self) -> None:
        """Watch nothing yet; the polling task starts with the first watched run."""
        self._watched: dict[str, int] = {}
        self._seen: dict[str, RunState] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, run_id: str) -> None:
        """Poll for this run (counted: several waiters may watch one run)."""
        self._watched[run_id] = self._watched.get(run_id, 0) + 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="run-poller")

    def discard(self, run_id: str) -> None:
        """Stop polling for this run once its last waiter left."""
        left = self._watched.get(run_id, 0) - 1
        if left > 0:
            self._watched[run_id] = left
            return
        self._watched.pop(run_id, None)
        self._seen.pop(run_id, None)

    async def _loop(self) -> None:
        interval = get_settings().run_poll_seconds
        while self._watched:
            await asyncio.sleep(interval)
            try:
                await self.poll_once()
            except Exception:
                log.exception("polling runs failed")

    async def poll_once(self) -> None:
        """Read the watched runs' state once and wake the waiters of those that changed."""
        here = live_runs.local_run_ids()
        remote = [r for r in self._watched if r not in here]
        local = [r for r in self._watched if r in here]
        states, cancelled = await direct.read(lambda tx: _poll(tx, remote, local))
        notifier = get_notifier()
        for run_id, state in states.items():
            if self._seen.get(run_id) != state:
                self._seen[run_id] = state
                notifier.deliver(run_topic(run_id), "poll")
        for run_id in cancelled:
            notifier.deliver(run_topic(run_id), "c")

    async def close(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _poll(tx: Tx, remote: list[str], local: list[str]) -> tuple[dict[str, RunState], list[str]]:
    states: dict[str, RunState] = {}
    for start in range(0, len(remote), PAGE):
        ids = remote[start : start + PAGE]
        last = (
            select(func.max(EVENTS.c.seq))
            .where(EVENTS.c.run_id == RUNS.c.id)
            .correlate(RUNS)
            .scalar_subquery()
        )
        rows = tx.conn.execute(
            select(RUNS.c.id, RUNS.c.status, RUNS.c.cancel_requested, last.label("last")).where(
                RUNS.c.id.in_(ids)
            )
        )
        for row in rows:
            states[row.id] = RunState(row.status, bool(row.cancel_requested), int(row.last or 0))
    cancelled: list[str] = []
    if local:
        found = tx.conn.execute(
            select(RUNS.c.id).where(RUNS.c.status == "running", RUNS.c.cancel_requested.is_(True))
        )
        wanted = set(local)
        cancelled = [r.id for r in found if r.id in wanted]
    return states, cancelled


@service("run_poller", per_loop=True)
def get_poller() -> RunPoller:
    """This event loop's poller (the fallback; built on first use)."""
    return RunPoller()


async def close_pollers() -> None:
    """Stop this loop's poller (tests, shutdown)."""
    poller = get_poller.pop_here()
    if poller is not None:
        await poller.close()


def describe() -> dict[str, Any]:
    """How this process follows runs of other instances (for /health and the docs)."""
    channel = get_notifier().channel
    return {"channel": channel or "poll", "poll_seconds": get_settings().run_poll_seconds}
