"""Live runs: each event of a run executing here reaches this instance's subscribers at once.

While this instance executes a run, a `LiveRun` holds every event the execution produced, in
order, and wakes its subscribers as each one is emitted: a streamed answer's first token
reaches a stream on the same instance without touching the database. `EventLog` numbers the
events (their SSE ids) and stores them through the batched writer (shared/db/direct.py): it
writes at once when nothing is being written for the run, and otherwise gathers the events
that arrive meanwhile into the next write, so a streamed answer costs a few transactions at
high load and adds no wait at low load. Other instances learn of stored events through
shared/platform/notify.py and read them from `run_events`, the durable replay log.

Memory: a LiveRun keeps its execution's events until the run ends here (a long answer streams
one event per token); it is dropped then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from shared.db import direct
from shared.runs import records
from shared.runs.records import EventRow

log = logging.getLogger(__name__)


class LiveRun:
    """The events of one execution of a run on this instance, and the waiters that follow it."""

    def __init__(self, *, tenant_id: str, run_id: str, initial: list[EventRow]) -> None:
        """Start with the run's stored events this execution continues from (may be none)."""
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.events: list[EventRow] = list(initial)
        self._changed = asyncio.Event()
        self.ended = False

    @property
    def first_seq(self) -> int:
        """The lowest seq this instance holds (a subscriber from before it reads the log)."""
        return self.events[0][0] if self.events else 1 << 62

    def push(self, row: EventRow) -> None:
        """Add an event and wake the subscribers."""
        self.events.append(row)
        if row[1] == "end":
            self.ended = True
        self._changed.set()

    def finish(self) -> None:
        """The execution stopped (ended, paused, or gave up): wake everyone for the last time."""
        self.ended = True
        self._changed.set()

    async def started(self, within: float) -> bool:
        """Wait until this execution emitted an event or stopped; False after `within` s."""
        try:
            async with asyncio.timeout(within):
                while not self.events and not self.ended:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def follow(self, after: int) -> AsyncIterator[EventRow]:
        """The events after seq `after`, as they come, until this execution's `end`."""
        index = 0
        while True:
            while index < len(self.events):
                row = self.events[index]
                index += 1
                if row[0] <= after:
                    continue
                yield row
                if row[1] == "end":
                    return
            if self.ended:
                return
            self._changed.clear()
            await self._changed.wait()


_LIVE: dict[str, LiveRun] = {}


def live_run(run_id: str) -> LiveRun | None:
    """The run's live view, when this instance executes it right now."""
    return _LIVE.get(run_id)


def register(live: LiveRun) -> None:
    """Make a run's live view findable by subscribers on this instance."""
    _LIVE[live.run_id] = live


def unregister(live: LiveRun) -> None:
    """Drop a run's live view (its execution here is over)."""
    if _LIVE.get(live.run_id) is live:
        del _LIVE[live.run_id]
    live.finish()


def local_run_ids() -> set[str]:
    """The runs this instance executes now."""
    return set(_LIVE)


class EventLog:
    """Numbers one execution's events, pushes them live, and stores them in the background."""

    def __init__(self, live: LiveRun, *, next_seq: int) -> None:
        """Continue at `next_seq` (one past the last stored event of the run)."""
        self.live = live
        self.next_seq = next_seq
        self._pending: list[EventRow] = []
        self._writer: asyncio.Task[None] | None = None

    def stage(self, name: str, data: Any) -> EventRow:
        """Reserve the next seq for an event the caller writes itself (in an outcome unit)."""
        row = (self.next_seq, name, data)
        self.next_seq += 1
        return row

    def emit(self, name: str, data: Any) -> None:
        """Record one event: subscribers here get it now; it is stored in the background."""
        row = self.stage(name, data)
        self.live.push(row)
        self._pending.append(row)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._pending:
            rows, self._pending = self._pending, []
            try:
                await direct.write(
                    partial(
                        records.append_events,
                        tenant_id=self.live.tenant_id,
                        run_id=self.live.run_id,
                        rows=rows,
                    )
                )
            except Exception:
                # Kept for the outcome's transaction, which writes whatever is left.
                log.exception("run %s: storing events failed", self.live.run_id)
                self._pending = rows + self._pending
                return

    async def drain(self) -> list[EventRow]:
        """Wait for the write under way, then hand over the events not stored yet."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        rows, self._pending = self._pending, []
        return rows

    def push_closing(self, rows: list[EventRow]) -> None:
        """Show subscribers here the closing events an outcome unit stored."""
        for row in rows:
            self.live.push(row)
