"""Starting, continuing, cancelling and recovering runs: the operations every adapter calls.

Where a run executes:

- `run_here` (the simple route, `/runs/wait`, `/runs/stream`, OpenAI chat completions and
  responses): created, claimed and leased in one transaction, then executed on this instance,
  with no queue round trip; the caller follows its live events or awaits its outcome. Leased
  like any run, so the sweeper recovers it if this instance dies (see `sweep`).
- `submit` (`POST /runs`, background responses, crons) and `resume` (after a review): created
  or set pending, then handed to the `agent-runs` queue; `execute_message` runs it on
  whichever instance takes the message (shared/runs/dispatch.py).

Capacity. One instance executes at most ASCENT_MAX_IN_FLIGHT_RUNS runs at once, requests and
queue messages together. A run waiting on its model holds no thread and no database connection
(shared/db/direct.py), so the limit is memory, not the pool. A request past it waits up to
ASCENT_RUN_SLOT_WAIT_SECONDS, then gets 503 with Retry-After; a queue message waits.
The tenant's concurrent-run budget (shared/security/ratelimit.py) applies to runs executed
inside requests.

Recovery (`sweep`: every host every ASCENT_SWEEP_INTERVAL_SECONDS, and the `sweep_leases` job;
docs/reliability.md). A pending run a receiver waits on is claimed by it (a lease renewed by
the same heartbeat), and one handed to the queue carries a dispatch deadline: a lapsed claim
or deadline gets one new message. A run whose lease lapsed lost its executor.
One executed inside a request (`lease_owner` starting `req:`) whose client asked to cancel on
disconnect (`on_disconnect: cancel`, the default; always for the simple route and OpenAI)
ended with its client: it is ended `error` (EXECUTOR_LOST), its thread freed, nothing of the
unfinished turn kept. Every other one is handed to the queue and taken over: the new executor
re-runs it from its start (or from its pause), with exactly one outcome.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Final

from shared.agents import configured
from shared.core.errors import ServiceUnavailable
from shared.core.settings import get_settings
from shared.db import direct, repo
from shared.db.availability import database_unavailable
from shared.db.engine import db_session
from shared.db.models import Run, new_id, utcnow
from shared.db.types import as_utc
from shared.memory.sessions import build_session
from shared.outbox.drain import drain_soon
from shared.platform import observability
from shared.platform.notify import Subscription, get_notifier
from shared.platform.queues import RUNS_QUEUE
from shared.runs import dispatch, records
from shared.runs.backlogs import watch_backlogs
from shared.runs.engine import Outcome, execute, leases, outcome_of
from shared.runs.live import LiveRun, register, unregister
from shared.runs.records import EventRow, NewRun, thread_topic
from shared.runs.watch import follow, wait_for_end, wake_timeout, watch
from shared.security.auth import Principal
from shared.security.data_policy import policy_for
from shared.security.ratelimit import check_token_budget, run_slot

log = logging.getLogger(__name__)

# The queue, review and outbox gauges of any process that serves runs (a registration only:
# the database is read when a metric reader collects, never at import).
watch_backlogs()

# Lease owners: an executor inside the request that created the run, or a queue consumer.
ATTACHED: Final = "req:"
QUEUED: Final = "q:"


# --- capacity ------------------------------------------------------------------------------------


class Capacity:
    """This instance's in-flight runs, bounded by ASCENT_MAX_IN_FLIGHT_RUNS."""

    def __init__(self, limit: int) -> None:
        """Allow `limit` runs at once."""
        self.limit = limit
        self._free = asyncio.Semaphore(limit)
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self, *, wait: float | None) -> AsyncIterator[None]:
        """Hold a slot; with `wait`, raise ServiceUnavailable (503) after that many seconds."""
        try:
            async with asyncio.timeout(wait):
                await self._free.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                f"This instance runs {self.limit} runs already; retry shortly.", retry_after=1
            ) from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._free.release()

    @property
    def free(self) -> int:
        """Slots free now."""
        return self.limit - self.in_flight


_CAPACITY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Capacity] = (
    weakref.WeakKeyDictionary()
)


def capacity() -> Capacity:
    """This event loop's capacity (one loop per worker process)."""
    loop = asyncio.get_running_loop()
    found = _CAPACITY.get(loop)
    if found is None:
        found = _CAPACITY[loop] = Capacity(get_settings().max_in_flight_runs)
    return found


# --- executing here --------------------------------------------------------------------------


@dataclass
class Handle:
    """A run executing on this instance: follow its events, or await its outcome."""

    run: Run
    live: LiveRun
    task: asyncio.Task[Outcome]

    async def outcome(self) -> Outcome:
        """Wait for the run to end here (a cancelled caller does not stop the run)."""
        return await asyncio.shield(self.task)

    def events(self, after: int = 0) -> AsyncIterator[EventRow | None]:
        """The run's events after seq `after` as they come (None: keepalive), until `end`."""
        return follow(tenant_id=self.run.tenant_id, run_id=self.run.id, after=after)


async def bind(new: NewRun) -> NewRun:
    """The run on the agent it names: a catalog agent, or the tenant's assistant, whose latest
    version it records in its config for the engine (404 before anything is written); its
    input as the tenant's data policy lets it be stored (refused: 422, before anything is
    written; redacted: the run, its history and events only ever hold the redacted form)."""
    policy = await policy_for(new.tenant_id)
    if policy.action != "off":
        new = replace(
            new,
            input_text=policy.check(new.input_text),
            input_items=policy.check_items(new.input_items),
        )
    bound = await configured.resolve(new.tenant_id, new.agent)
    config = configured.bind_config(new.config, bound)
    if bound.agent == new.agent and config is new.config:
        return new  # a catalog agent by name: nothing to record (the common case)
    return replace(new, agent=bound.agent, config=config)


async def run_here(new: NewRun, *, principal: Principal) -> Handle:
    """Create a run and execute it on this instance (see the module docstring)."""
    new = await bind(new)
    await check_token_budget(new.tenant_id)
    owner = ATTACHED + new_id()
    new = replace(new, lease_owner=owner)
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(run_slot(principal))
        wait = get_settings().run_slot_wait_seconds
        await stack.enter_async_context(capacity().slot(wait=wait))
        # Subscribed before the run exists, so no cancel of it can go unheard.
        wakes = stack.enter_context(watch(new.run_id))
        created = await direct.write(lambda tx: records.create_run(tx, new))
    except BaseException:
        await stack.aclose()
        raise
    run = created.run
    live = LiveRun(
        tenant_id=run.tenant_id,
        run_id=run.id,
        initial=[(1, "metadata", {"run_id": run.id, "thread_id": run.thread_id})],
    )
    register(live)

    async def drive() -> Outcome:
        try:
            if created.started:
                return await execute(
                    run,
                    owner=owner,
                    live=live,
                    wakes=wakes,
                    next_seq=2,
                    fresh_thread=created.thread_created,
                    maybe_resumed=False,
                )
            return await _start_when_due(run, owner=owner, live=live, wakes=wakes)
        except Exception as exc:
            # A store failed under the run (no queue will retry it): end it, best effort.
            log.exception("run %s failed", run.id)
            outcome = await _fail_here(run, owner, type(exc).__name__)
            if database_unavailable(exc):
                outcome.cause = "unavailable"  # the caller answers 503, retry later
            return outcome
        finally:
            unregister(live)
            await stack.aclose()

    task = dispatch.spawn(drive())
    return Handle(run, live, task)


async def _start_when_due(run: Run, *, owner: str, live: LiveRun, wakes: Subscription) -> Outcome:
    """Wait for a pending run's turn on its thread (FIFO) or its `not_before`, then execute."""
    assert run.thread_id is not None
    notifier = get_notifier()
    # The caller claimed the pending run for `owner`; the heartbeat renews the claim while it
    # waits, so a dead waiter's run is handed out again within a lease (see `sweep`).
    lost = asyncio.Event()
    held = leases()
    held.hold(run.id, owner, lost.set)
    reload = partial(records.load_run, run_id=run.id)
    try:
        with notifier.subscribe(thread_topic(run.tenant_id, run.thread_id)) as freed:
            start_it = partial(records.start_run, run_id=run.id, owner=owner)
            while True:
                start = await direct.write(start_it)
                if start.run is not None:
                    return await execute(
                        start.run, owner=owner, live=live, wakes=wakes, next_seq=start.next_seq
                    )
                if start.ended is not None or lost.is_set():
                    found = await direct.read(reload)
                    return outcome_of(found if found is not None else run)
                pause = wake_timeout() if notifier.channel else get_settings().run_poll_seconds
                if start.wait_until is not None:
                    pause = min(pause, max(0.0, (start.wait_until - utcnow()).total_seconds()))
                waiters = [
                    asyncio.ensure_future(freed.wait(pause)),
                    asyncio.ensure_future(wakes.wait(pause)),
                    asyncio.ensure_future(lost.wait()),
                ]
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
    finally:
        held.drop(run.id)


async def _fail_here(run: Run, owner: str, error: str) -> Outcome:
    """End a run this instance held whose execution raised, and report it failed."""
    try:
        await direct.write(
            partial(records.end_run, run=run, from_status="running", status="error", error=error)
        )
    except Exception:
        log.exception("run %s: could not record its failure; the sweeper will", run.id)
    outcome = outcome_of(run)
    outcome.status, outcome.error, outcome.cause = "error", error, "failed"
    return outcome


# --- executing from the queue --------------------------------------------------------------------


async def submit(new: NewRun) -> Run:
    """Create a pending run and hand it to the queue (`POST /runs`, crons)."""
    new = await bind(new)
    await check_token_budget(new.tenant_id)
    created = await direct.write(lambda tx: records.create_run(tx, new))
    await enqueue(created.run)
    return created.run


async def enqueue(run: Run) -> None:
    """Hand a pending run to an executor (the queue, or this instance when inline)."""
    drain_soon()
    await dispatch.enqueue_run(run, inline=execute_message)


async def resume(run_ids: list[str]) -> None:
    """Hand runs a review decision set pending again to an executor."""
    for run_id in run_ids:
        run = await direct.read(partial(records.load_run, run_id=run_id))
        if run is not None and run.status == "pending":
            await enqueue(run)


async def execute_message(run_id: str, tenant_id: str, traceparent: str | None = None) -> None:
    """Execute the run a queue message names; a duplicate, or a run another executor holds or
    finished, is acknowledged without a second execution (compare-and-set claims, leases).

    The consumer span continues the enqueuing trace (`traceparent` from the message), so a
    background run is one trace whichever instance takes it.
    """
    carried = {observability.TRACEPARENT: traceparent} if traceparent else None
    with observability.span(
        f"{RUNS_QUEUE} process",
        kind=observability.SpanKind.CONSUMER,
        parent=observability.extract(carried) if carried else None,
        attributes={
            "messaging.operation.type": "process",
            "messaging.destination.name": RUNS_QUEUE,
            "ascent.run.id": run_id,
            "ascent.tenant.id": tenant_id,
        },
    ):
        await _execute_message(run_id, tenant_id)


async def _execute_message(run_id: str, tenant_id: str) -> None:
    owner = QUEUED + new_id()
    async with capacity().slot(wait=None):
        with watch(run_id) as wakes:
            taken = await direct.write(
                lambda tx: records.take_over(tx, run_id, owner=owner, tenant_id=tenant_id)
            )
            live = LiveRun(tenant_id=tenant_id, run_id=run_id, initial=[])
            register(live)
            try:
                if taken.run is not None:
                    log.warning("run %s: lease lapsed, taken over by %s", run_id, owner)
                    await execute(
                        taken.run,
                        owner=owner,
                        live=live,
                        wakes=wakes,
                        next_seq=taken.next_seq,
                        taken_over=True,
                    )
                    return
                found = await direct.read(lambda tx: records.load_run(tx, run_id))
                if found is None or found.tenant_id != tenant_id:
                    if found is not None:
                        log.warning("run message for %s names another tenant; ignored", run_id)
                    return
                if found.status == "pending":
                    claimed = await direct.write(
                        partial(
                            records.claim_pending, run_id=run_id, owner=owner, tenant_id=tenant_id
                        )
                    )
                    if not claimed:
                        # Another live receiver waits on it: this message is a duplicate.
                        log.info("run %s: held by another receiver; message acknowledged", run_id)
                        return
                    await _start_when_due(found, owner=owner, live=live, wakes=wakes)
            finally:
                unregister(live)


async def fail_dead_lettered(run_id: str, *, tenant_id: str, reason: str) -> bool:
    """End a run `error` because its message was dead-lettered; False when left alone.

    Only a pending run, or a running run whose lease lapsed (nobody executes it), is ended; a
    finished run, or one a live executor holds, keeps its course.
    """

    def unit(tx: direct.Tx) -> bool:
        run = records.load_run(tx, run_id, tenant_id=tenant_id)
        if run is None:
            return False
        if run.status == "pending":
            records.end_run(tx, run, from_status="pending", status="error", error=reason)
            return True
        return records.end_lapsed(tx, run_id, error=reason) is not None

    failed = await direct.write(unit)
    if failed:
        drain_soon()
    return failed


# --- cancelling, waiting -------------------------------------------------------------------------


async def cancel(tenant_id: str, run_id: str) -> Run | None:
    """Request a run's cancellation: a pending run ends now, a running one as soon as its
    executor hears of it (pushed to it on any instance)."""
    found = await direct.write(
        lambda tx: records.request_cancel(tx, tenant_id=tenant_id, run_id=run_id)
    )
    drain_soon()
    return found


async def wait(tenant_id: str, run_id: str, *, within: float | None = None) -> str | None:
    """Wait until the run is no longer pending or running (woken by pushes); its status."""
    limit = get_settings().run_wait_seconds if within is None else within
    return await wait_for_end(tenant_id=tenant_id, run_id=run_id, within=limit)


async def delete_thread(tenant_id: str, thread_id: str) -> None:
    """Delete a thread with its conversation, grants, runs and their events."""
    await build_session(tenant_id, thread_id).clear_session()
    async with db_session() as db:
        await repo.delete_thread(session=db, tenant_id=tenant_id, thread_id=thread_id)
        await db.commit()


# --- recovery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did: runs re-enqueued after their executor died, runs ended because their
    client went with it, pending runs re-enqueued after their receiver died or their message
    was not received within a lease, and stale pending runs re-enqueued."""

    expired: list[str]
    ended: list[str]
    stale_pending: list[str]
    lapsed_pending: list[str] = field(default_factory=list)


async def sweep() -> SweepReport:
    """Find stranded runs and recover each once (see the module docstring)."""
    settings = get_settings()
    # One bound for both: a pending run untouched this long, and a failed delivery's run the
    # queue has not redelivered in this long, are handed out again.
    grace = timedelta(seconds=settings.sweep_pending_after_seconds)
    older_than = utcnow() - grace
    lapsed = await direct.read(lambda tx: records.expired_leases(tx, redelivery_grace=grace))
    unclaimed = await direct.read(lambda tx: records.lapsed_pending(tx))
    expired: list[str] = []
    ended: list[str] = []
    stale: list[str] = []
    handed: list[str] = []
    for run in lapsed:
        attached = (run.lease_owner or "").startswith(ATTACHED)
        if attached and run.on_disconnect != "continue":
            run_id = run.id
            done = await direct.write(
                partial(records.end_lapsed, run_id=run_id, error=records.EXECUTOR_LOST)
            )
            if done is not None:
                ended.append(run.id)
            continue
        if await _touch(run):
            expired.append(run.id)
            await enqueue(run)
    for run in unclaimed:
        attached = (run.lease_owner or "").startswith(ATTACHED)
        if attached and run.on_disconnect != "continue":
            # It waited for its thread inside a request that died: its client is gone too.
            done = await direct.write(
                partial(records.end_lapsed_pending, run_id=run.id, error=records.EXECUTOR_LOST)
            )
            if done is not None:
                ended.append(run.id)
            continue
        if await direct.write(partial(records.release_lapsed_pending, run=run)):
            handed.append(run.id)
            await enqueue(run)
    # Read after the lapsed ones were handed out: their updated_at moved, so none is sent twice.
    async with db_session() as db:
        waiting = list(await repo.stale_pending_runs(session=db, older_than=older_than))
    for run in waiting:
        if run.not_before is not None and as_utc(run.not_before) > utcnow():
            continue
        if await _touch(run):
            stale.append(run.id)
            await enqueue(run)
    if ended:
        drain_soon()
    return SweepReport(expired=expired, ended=ended, stale_pending=stale, lapsed_pending=handed)


# The Functions timer that sweeps in Azure ticks this often; it sweeps on the ticks where
# ASCENT_SWEEP_INTERVAL_SECONDS passed (half a tick early, so 15 s means every third tick).
SWEEP_TICK_SECONDS: Final = 5
_LAST_SWEEP: dict[str, float] = {}


async def sweep_if_due() -> SweepReport | None:
    """Sweep when this process last swept a sweep interval ago (None: not due yet)."""
    now = asyncio.get_running_loop().time()
    last = _LAST_SWEEP.get("at")
    if (
        last is not None
        and now - last < get_settings().sweep_every_seconds - SWEEP_TICK_SECONDS / 2
    ):
        return None
    _LAST_SWEEP["at"] = now
    return await sweep()


async def _touch(run: Run) -> bool:
    """Compare-and-set the run's updated_at, so concurrent sweepers recover it once."""
    async with db_session() as db:
        if not await repo.touch_run(session=db, run_id=run.id, seen=run.updated_at):
            return False
        await db.commit()
    return True
