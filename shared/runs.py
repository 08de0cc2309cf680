"""The run service: run a catalog agent on a tenant's thread and record the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from agents import (
    AgentUpdatedStreamEvent,
    HandoffCallItem,
    HandoffOutputItem,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    MessageOutputItem,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    RawResponsesStreamEvent,
    RunConfig,
    RunItemStreamEvent,
    Runner,
    RunResultStreaming,
    StreamEvent,
    ToolCallItem,
    ToolCallOutputItem,
)
from agents.extensions.memory import SQLAlchemySession
from agents.items import TResponseInputItem
from agents.memory import Session
from openai.types.responses import ResponseTextDeltaEvent
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared import events, reviews, thread_access
from shared.agents import get_agent
from shared.agents.approval import RunContext
from shared.agents.memory_tools import MemoryContext
from shared.auth import Principal
from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import Run, Thread, new_id, utcnow
from shared.errors import Conflict, GuardrailTripped, NotFound, UpstreamModelError
from shared.llm import get_model_provider
from shared.ratelimit import record_tokens
from shared.run_events import EventWriter, to_message, to_messages
from shared.sessions import WriteBehindSession, build_session
from shared.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What a finished synchronous run returns to its caller."""

    run_id: str
    thread_id: str
    agent: str
    last_agent: str
    status: str
    output: str
    usage: dict[str, int]


def session_id(tenant_id: str, thread_id: str) -> str:
    """The SDK session key of a thread: the tenant is part of it, so histories never mix."""
    return f"{tenant_id}:{thread_id}"


def conversation_session(tenant_id: str, thread_id: str) -> Session:
    """The thread's conversation memory, on the backend SESSION_BACKEND chooses."""
    return build_session(tenant_id, thread_id)


REFUSED_INPUT = "[input refused by a guardrail]"


async def forget_refused_input(session: Session, refused: str | list[TResponseInputItem]) -> None:
    """Remove input an input guardrail refused from the thread's history.

    The SDK saves a turn's input to the session before its input guardrails finish, so a refused
    message (say, one carrying a card number) would stay in the history and be sent to the model
    on the next turn. The thread is held by this run, so nothing else appended after it.
    """
    count = 1 if isinstance(refused, str) else len(refused)
    for _ in range(count):
        item = await session.pop_item()
        if item is None:
            return


def run_config() -> RunConfig:
    """Per-run configuration from settings: the model provider and whether traces leave."""
    settings = get_settings()
    return RunConfig(
        model_provider=get_model_provider(),
        model=None if settings.model_provider == "offline" else settings.model_name,
        tracing_disabled=not settings.exports_traces,
    )


def _usage(result_usage: Any) -> dict[str, int]:
    return {
        "requests": int(result_usage.requests),
        "input_tokens": int(result_usage.input_tokens),
        "output_tokens": int(result_usage.output_tokens),
        "total_tokens": int(result_usage.total_tokens),
    }


async def run_agent(
    *, principal: Principal, agent_name: str, input_text: str, thread_id: str | None = None
) -> RunOutcome:
    """Run an agent to completion on a thread (a new one when none is given)."""
    agent = get_agent(agent_name)
    tenant = principal.tenant_id
    new_run_id = new_id()
    async with db_session() as db:
        if thread_id is None:
            thread = await repo.create_thread(
                session=db,
                tenant_id=tenant,
                owner_id=thread_access.owner_for(principal),
                busy_with=new_run_id,
            )
        else:
            found = await thread_access.find_thread(db, principal, thread_id)
            if found is None:
                raise NotFound(f"No thread {thread_id!r}.")
            thread = found
        run = await repo.create_run(
            session=db,
            tenant_id=tenant,
            thread_id=thread.id,
            agent=agent_name,
            input_text=input_text,
            user_id=principal.user_id or principal.key_id,
            run_id=new_run_id,
        )
        # One active run per thread: compare-and-set an existing thread to busy, or refuse.
        if thread_id is not None and not await repo.claim_thread(
            session=db, tenant_id=tenant, thread_id=thread.id, run_id=run.id, queued_at=None
        ):
            await db.rollback()
            raise Conflict(f"Thread {thread.id!r} is busy with another run.")
        session = _write_behind(tenant, thread.id, new_thread=thread_id is None)
        if isinstance(session, WriteBehindSession) and thread_id is not None:
            await session.load(db)
        await db.commit()
    run_id, thread_id = run.id, thread.id

    settings = get_settings()
    try:
        result = await Runner.run(
            agent,
            input_text,
            session=session,
            context=MemoryContext.from_principal(principal),
            run_config=run_config(),
            max_turns=settings.max_turns,
        )
    except InputGuardrailTripwireTriggered as exc:
        name = exc.guardrail_result.guardrail.get_name()
        await forget_refused_input(session, input_text)
        run.input = REFUSED_INPUT
        await _fail(run, session, status="error", error=f"input guardrail tripped: {name}")
        raise GuardrailTripped(
            f"The input was refused by the {name!r} guardrail.",
            guardrail=name,
            run_id=run_id,
            thread_id=thread_id,
        ) from None
    except (ModelBehaviorError, MaxTurnsExceeded) as exc:
        await _fail(run, session, status="error", error=type(exc).__name__)
        raise UpstreamModelError(
            "The agent did not produce an answer.", run_id=run_id, thread_id=thread_id
        ) from exc
    except Exception as exc:
        # Provider outages, timeouts and bugs: record the class, never the message (may hold
        # request data), and answer 502 rather than leaking internals.
        log.exception("run %s failed", run_id)
        await _fail(run, session, status="error", error=type(exc).__name__)
        raise UpstreamModelError("The run failed.", run_id=run_id, thread_id=thread_id) from exc

    output = str(result.final_output)
    usage = _usage(result.context_wrapper.usage)
    await record_tokens(tenant, usage["total_tokens"])
    async with db_session() as db:
        await repo.finish_run(
            session=db,
            run=run,
            status="success",
            output=output,
            last_agent=result.last_agent.name,
            usage=usage,
        )
        await _flush_history(session, db)
        await db.commit()
    return RunOutcome(
        run_id=run_id,
        thread_id=thread_id,
        agent=agent_name,
        last_agent=result.last_agent.name,
        status="success",
        output=output,
        usage=usage,
    )


async def _fail(run: Any, session: Session, *, status: str, error: str) -> None:
    async with db_session() as db:
        await repo.finish_run(session=db, run=run, status=status, error=error)
        await _flush_history(session, db)
        await db.commit()


def _write_behind(tenant_id: str, thread_id: str, *, new_thread: bool) -> Session:
    """The session of a synchronous run: write-behind on the SQL backend, else the backend's.

    Write-behind (shared/sessions.py) turns the SDK's two history transactions per turn into
    rows of the run's final transaction, the largest saving on the synchronous path
    (bench/turn_overhead.py). A thread this run created has no history to read.
    """
    session = conversation_session(tenant_id, thread_id)
    if isinstance(session, SQLAlchemySession):
        return WriteBehindSession(session, stored=[] if new_thread else None)
    return session


async def _flush_history(session: Session, db: Any) -> None:
    """Write a write-behind session's pending history in `db`'s transaction (else nothing)."""
    if isinstance(session, WriteBehindSession):
        await session.flush_into(db)


async def thread_items(*, principal: Principal, thread_id: str) -> list[TResponseInputItem]:
    """Return a thread's conversation history (SDK items), oldest first (404 unless visible)."""
    async with db_session() as db:
        thread = await thread_access.find_thread(db, principal, thread_id)
    if thread is None:
        raise NotFound(f"No thread {thread_id!r}.")
    session = conversation_session(principal.tenant_id, thread_id)
    return await session.get_items(limit=get_settings().history_limit)


# --- Agent Protocol runs: the executor ----------------------------------------------------------
#
# A protocol run is persisted `pending` by the API, then `execute_run(run_id)` takes it to its
# end. Today the API instance schedules it as an asyncio task (`start_run_task`); a queue
# trigger can call the same function later. Everything it needs is in the database, so any
# instance can execute any run, and it is idempotent: a run that is no longer pending is left
# alone, and the pending -> running transition is a compare-and-set, so a redelivered message
# never runs a run twice.

# Tasks this instance executes; referenced here so the event loop does not drop them.
_RUN_TASKS: set[asyncio.Task[None]] = set()


def start_run_task(run_id: str) -> asyncio.Task[None]:
    """Execute a run in the background on this instance (the task is kept referenced)."""
    task = asyncio.get_running_loop().create_task(execute_run(run_id), name=f"run-{run_id}")
    _RUN_TASKS.add(task)
    task.add_done_callback(_RUN_TASKS.discard)
    return task


def spawn(coro: Coroutine[Any, Any, None]) -> None:
    """Run bookkeeping in the background, e.g. from a cancelled request (kept referenced)."""
    task = asyncio.get_running_loop().create_task(coro)
    _RUN_TASKS.add(task)
    task.add_done_callback(_RUN_TASKS.discard)


async def wait_for_run_tasks() -> None:
    """Wait until the runs and bookkeeping this instance runs in the background have ended.

    A one-shot process (an ACA job that enqueued runs with QUEUE_BACKEND=inline) calls it
    before exiting, so it does not strand the runs it started.
    """
    while _RUN_TASKS:
        await asyncio.gather(*list(_RUN_TASKS), return_exceptions=True)


def aware(moment: datetime) -> datetime:
    """A timestamp as timezone-aware UTC (SQLite hands them back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_input(run: Run) -> str | list[TResponseInputItem]:
    """What the SDK receives: the normalized input messages, or the plain text."""
    if run.input_items:
        return [cast(TResponseInputItem, dict(item)) for item in run.input_items]
    return run.input


async def finish_pending_run(run: Run, *, status: str, error: str) -> bool:
    """End a run that never started (cancelled, or its thread vanished); False if it started."""
    async with db_session() as db:
        if not await repo.transition_run(
            session=db,
            run_id=run.id,
            from_status="pending",
            status=status,
            error=error,
            output="",
            finished_at=utcnow(),
        ):
            return False
        await close_ended_run(db, run, status=status, error=error, thread_status="idle")
        await db.commit()
    events.drain_soon()
    return True


async def close_ended_run(
    db: AsyncSession, run: Run, *, status: str, error: str, thread_status: str
) -> None:
    """In the caller's transaction, after it moved `run` to its final `status` without output:
    write the closing stream events, free the thread, and record the run's domain event."""
    seq = await repo.last_run_event_seq(session=db, run_id=run.id)
    writer = EventWriter(tenant_id=run.tenant_id, run_id=run.id, next_seq=seq + 1)
    rows = []
    if status == "error":
        rows.append(writer.stage("error", {"error": "RunError", "message": error}))
    rows.append(writer.stage("end", {"run_id": run.id, "status": status}))
    await repo.append_run_events(session=db, tenant_id=run.tenant_id, run_id=run.id, events=rows)
    if run.thread_id:
        await repo.release_thread(
            session=db,
            tenant_id=run.tenant_id,
            thread_id=run.thread_id,
            run_id=run.id,
            status=thread_status,
        )
    await events.record_event(
        session=db,
        tenant_id=run.tenant_id,
        type=events.run_event_type(status, error),
        subject=run.id,
        data=events.run_event_data(run, status=status, error=error),
    )


async def _wait_for_turn(
    run_id: str, *, owner: str | None = None, tenant_id: str | None = None
) -> Run | None:
    """Wait until the run may start and holds its thread; None when it must not run.

    With `owner`, the pending -> running compare-and-set also takes the run's lease for it.
    """
    settings = get_settings()
    while True:
        async with db_session() as db:
            run = await db.get(Run, run_id)
            if run is None or run.status != "pending":
                return None
            if tenant_id is not None and run.tenant_id != tenant_id:
                log.warning("run message for %s names another tenant; ignored", run_id)
                return None
            if run.cancel_requested:
                await finish_pending_run(run, status="interrupted", error="cancelled")
                return None
            thread = await db.get(Thread, run.thread_id) if run.thread_id else None
            if thread is None:
                await finish_pending_run(run, status="error", error="thread deleted")
                return None
            due = run.not_before is None or aware(run.not_before) <= utcnow()
            if due:
                held = thread.status == "busy" and thread.active_run_id == run.id
                if not held:
                    held = await repo.claim_thread(
                        session=db,
                        tenant_id=run.tenant_id,
                        thread_id=thread.id,
                        run_id=run.id,
                        queued_at=run.created_at,
                    )
                    await db.commit()
                if held:
                    leased = lease_values(owner) if owner is not None else {}
                    started = await repo.transition_run(
                        session=db,
                        run_id=run.id,
                        from_status="pending",
                        status="running",
                        started_at=utcnow(),
                        **leased,
                    )
                    if started:
                        await events.record_event(
                            session=db,
                            tenant_id=run.tenant_id,
                            type=events.RUN_STARTED,
                            subject=run.id,
                            data=events.run_event_data(run, status="running"),
                        )
                    await db.commit()
                    if started:
                        events.drain_soon()
                        run.status = "running"
                        run.lease_owner = owner
                        return run
                    # Cancelled between the claim and the start: give the thread back.
                    await repo.release_thread(
                        session=db,
                        tenant_id=run.tenant_id,
                        thread_id=thread.id,
                        run_id=run.id,
                        status="idle",
                    )
                    await db.commit()
                    return None
        await asyncio.sleep(settings.run_poll_seconds)


# --- Execution leases: exactly one outcome on at-least-once delivery ---------------------------


def lease_values(owner: str) -> dict[str, Any]:
    """Columns that give `owner` the run's lease for ASCENT_RUN_LEASE_SECONDS from now."""
    seconds = get_settings().run_lease_seconds
    return {"lease_owner": owner, "lease_expires_at": utcnow() + timedelta(seconds=seconds)}


async def _take_over(run_id: str, *, owner: str, tenant_id: str | None) -> Run | None:
    """Claim a `running` run whose lease lapsed (its worker died); None when there is none.

    The compare-and-set on `lease_expires_at < now` lets exactly one of several racing
    deliveries win. The winner trims the conversation back to where the run started (the dead
    worker may have saved the input or part of the answer, `_trim_history`) and runs it again.
    """
    async with db_session() as db:
        run = await db.get(Run, run_id)
        if run is None or run.status != "running" or run.lease_expires_at is None:
            return None
        if tenant_id is not None and run.tenant_id != tenant_id:
            return None
        if aware(run.lease_expires_at) >= utcnow():
            return None
        expires = lease_values(owner)["lease_expires_at"]
        if not await repo.take_over_run(session=db, run_id=run_id, owner=owner, expires_at=expires):
            await db.rollback()
            return None
        await db.commit()
    log.warning("run %s: lease lapsed, taken over by %s", run_id, owner)
    run.lease_owner = owner
    return run


async def _trim_history(run: Run) -> None:
    """Drop what a dead worker added to the thread's history after the run started."""
    if run.thread_id is None or run.history_start is None:
        return
    session = conversation_session(run.tenant_id, run.thread_id)
    extra = len(await session.get_items()) - run.history_start
    for _ in range(max(0, extra)):
        await session.pop_item()


async def _record_history_start(run: Run) -> None:
    """Remember how long the thread's history was when the run first started (for takeovers)."""
    if run.history_start is not None or run.thread_id is None or run.lease_owner is None:
        return
    items = await conversation_session(run.tenant_id, run.thread_id).get_items()
    async with db_session() as db:
        await repo.transition_run(
            session=db,
            run_id=run.id,
            from_status="running",
            held_by=run.lease_owner,
            history_start=len(items),
        )
        await db.commit()
    run.history_start = len(items)


class _Lease:
    """Renews a run's lease every third of ASCENT_RUN_LEASE_SECONDS while the run executes.

    On an exception the lease is given up at once (expires now), so the redelivered message, or
    the sweeper, takes the run over without waiting the lease out; the exception propagates.
    """

    def __init__(self, run_id: str, owner: str) -> None:
        self.run_id = run_id
        self.owner = owner
        self.lost = False
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> _Lease:
        """Start the heartbeat."""
        self._task = asyncio.create_task(self._beat(), name=f"lease-{self.run_id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Stop the heartbeat; release the lease when the run failed unexpectedly."""
        if self._task is not None:
            # Stopped, not cancelled: a renewal in flight finishes and returns its pooled
            # connection (a cancel mid-statement would leave it to the garbage collector).
            self._stop.set()
            await self._task
        if exc_type is not None:
            try:
                async with db_session() as db:
                    await repo.renew_lease(
                        session=db, run_id=self.run_id, owner=self.owner, expires_at=utcnow()
                    )
                    await db.commit()
            except Exception:
                log.exception("run %s: could not release its lease", self.run_id)

    async def _beat(self) -> None:
        every = get_settings().run_lease_seconds / 3
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=every)
                return
            except TimeoutError:
                pass
            try:
                async with db_session() as db:
                    held = await repo.renew_lease(
                        session=db,
                        run_id=self.run_id,
                        owner=self.owner,
                        expires_at=lease_values(self.owner)["lease_expires_at"],
                    )
                    await db.commit()
            except Exception:
                log.exception("run %s: lease renewal failed", self.run_id)
                continue
            if not held:
                self.lost = True
                log.warning("run %s: lease lost by %s", self.run_id, self.owner)
                return


async def fail_run(run_id: str, *, tenant_id: str, reason: str) -> bool:
    """Mark a run `error` because its message was dead-lettered; False when left alone.

    Only a pending run, or a running run whose lease lapsed (nobody executes it), is failed;
    a finished run, or one a live worker holds, keeps its course.
    """
    async with db_session() as db:
        run = await db.get(Run, run_id)
    if run is None or run.tenant_id != tenant_id:
        return False
    if run.status == "pending":
        return await finish_pending_run(run, status="error", error=reason)
    if run.status != "running":
        return False
    if run.lease_expires_at is not None and aware(run.lease_expires_at) >= utcnow():
        return False
    async with db_session() as db:
        if not await repo.transition_run(
            session=db,
            run_id=run.id,
            from_status="running",
            held_by=run.lease_owner,
            status="error",
            error=reason,
            output="",
            finished_at=utcnow(),
            lease_expires_at=None,
        ):
            return False
        await close_ended_run(db, run, status="error", error=reason, thread_status="error")
        await db.commit()
    events.drain_soon()
    return True


class _CancelWatch:
    """Polls the run's cancel flag and stops the streamed run when any instance sets it."""

    def __init__(self, run_id: str, result: RunResultStreaming) -> None:
        self.run_id = run_id
        self.result = result
        self.cancelled = False

    async def watch(self) -> None:
        """Poll until the flag is set (then cancel the run) or this task is cancelled."""
        poll = get_settings().run_poll_seconds
        while True:
            await asyncio.sleep(poll)
            async with db_session() as db:
                row = (
                    await db.exec(select(Run.cancel_requested).where(Run.id == self.run_id))
                ).first()
            if row is None or row:
                self.cancelled = True
                self.result.cancel("immediate")
                return


def _events_of(event: StreamEvent, agent_name: str, partial: list[str]) -> list[tuple[str, Any]]:
    """Translate one SDK stream event into protocol events (see shared.run_events)."""
    if isinstance(event, RawResponsesStreamEvent):
        data = event.data
        if isinstance(data, ResponseTextDeltaEvent):
            partial.append(data.delta)
            chunk = {"type": "AIMessageChunk", "content": data.delta, "id": data.item_id}
            return [("messages", [chunk, {"agent": agent_name}])]
        return []
    if isinstance(event, RunItemStreamEvent):
        item = event.item
        if isinstance(item, HandoffOutputItem):
            source, target = item.source_agent.name, item.target_agent.name
            return [("updates", {source: {"handoff": {"to": target}}})]
        if isinstance(
            item, MessageOutputItem | ToolCallItem | ToolCallOutputItem | HandoffCallItem
        ):
            message = to_message(item.raw_item)
            if message is not None:
                return [("updates", {item.agent.name: {"messages": [message]}})]
    return []


async def execute_run(run_id: str, *, tenant_id: str | None = None) -> None:
    """Take a persisted pending run to its end, persisting every event it streams.

    Waits for `not_before` and its turn on the thread (FIFO among pending runs), runs the agent
    streamed, writes each event to `run_events`, stops when any instance requests a cancel, and
    records the outcome: success, error, timeout, or interrupted (cancelled) with the partial
    output. Safe to call more than once for the same run, from any number of workers: the
    pending -> running claim is a compare-and-set that also takes a lease, renewed while this
    worker executes; a run that is running under a live lease, or finished, is left alone; a run
    whose lease lapsed (its worker died) is taken over. The outcome is written only while the
    lease is still this worker's, so a run has exactly one outcome. An unexpected failure gives
    the lease up at once and re-raises, so the queue redelivers (and finally dead-letters) it.
    """
    owner = new_id()
    run = await _take_over(run_id, owner=owner, tenant_id=tenant_id)
    taken_over = run is not None
    if run is None:
        run = await _wait_for_turn(run_id, owner=owner, tenant_id=tenant_id)
    if run is None or run.thread_id is None:
        return
    async with _Lease(run_id, owner):
        if taken_over:
            await _trim_history(run)
        await _execute_claimed(run)


async def _execute_claimed(run: Run) -> None:
    """Run a claimed (running, leased) run's agent and record the outcome."""
    assert run.thread_id is not None
    run_id = run.id
    tenant, thread_id = run.tenant_id, run.thread_id
    await _record_history_start(run)
    settings = get_settings()
    async with db_session() as db:
        seq = await repo.last_run_event_seq(session=db, run_id=run_id)
    writer = EventWriter(tenant_id=tenant, run_id=run_id, next_seq=seq + 1)
    session = conversation_session(tenant, thread_id)
    partial: list[str] = []
    status, error, output, last_agent = "success", None, "", run.agent
    usage: dict[str, int] = {}
    # Human-in-the-loop (shared/reviews.py): a run resumed after its reviews were decided.
    pause = await reviews.load_pause(run)
    if pause is not None and pause.kind == "output":
        answer = await reviews.release_answer(run, pause, session)
        await _finish(
            run,
            writer,
            status="success",
            error=None,
            output=answer,
            last_agent=pause.agent,
            usage={},
        )
        return
    context = RunContext(tenant, run.user_id or "", thread_id, run_id)
    try:
        agent = get_agent(run.agent)
        given: Any = run_input(run)
        if pause is not None:
            given = await reviews.resumed_state(run, pause, agent, context)
        else:
            new_items = [{"role": "user", "content": given}] if isinstance(given, str) else given
            history = await session.get_items(limit=settings.history_limit)
            await writer.write("values", {"messages": to_messages([*history, *new_items])})
        result = Runner.run_streamed(
            agent,
            given,
            session=session,
            context=context if run.user_id else None,
            run_config=run_config(),
            max_turns=_max_turns(run),
        )
        watch = _CancelWatch(run_id, result)
        watcher = asyncio.create_task(watch.watch())
        try:
            async with asyncio.timeout(settings.run_timeout_seconds):
                async for event in result.stream_events():
                    if isinstance(event, AgentUpdatedStreamEvent):
                        last_agent = event.new_agent.name
                    for name, data in _events_of(event, last_agent, partial):
                        await writer.write(name, data)
        except TimeoutError:
            result.cancel("immediate")
            status, error = "timeout", "the run exceeded ASCENT_RUN_TIMEOUT_SECONDS"
        finally:
            watcher.cancel()
        usage = _usage(result.context_wrapper.usage)
        if status == "success" and watch.cancelled:
            status, error = "interrupted", "cancelled"
        if status == "success" and result.interruptions:
            # A tool call waits for a human: persist the RunState and the reviews, and stop.
            await reviews.pause_for_tools(run, writer, result, usage=usage)
            return
        if status == "success":
            output = str(result.final_output)
            last_agent = result.last_agent.name
        else:
            output = "".join(partial)
    except OutputGuardrailTripwireTriggered as exc:
        held = exc.guardrail_result
        if not reviews.holds_for_review(held.output.output_info):
            status, error = "error", f"output guardrail tripped: {held.guardrail.get_name()}"
        else:
            # The answer goes to a reviewer instead of the user (an output review).
            await reviews.pause_for_output(
                run,
                writer,
                agent=held.agent.name,
                output=str(held.agent_output),
                reason=str(held.output.output_info.get("reason") or held.guardrail.get_name()),
                usage=usage,
            )
            return
    except InputGuardrailTripwireTriggered as exc:
        status = "error"
        error = f"input guardrail tripped: {exc.guardrail_result.guardrail.get_name()}"
        await forget_refused_input(session, run_input(run))
        async with db_session() as db:
            await repo.redact_run_input(session=db, run_id=run_id, text=REFUSED_INPUT)
            await db.commit()
    except (ModelBehaviorError, MaxTurnsExceeded) as exc:
        status, error, output = "error", type(exc).__name__, "".join(partial)
    except Exception as exc:
        # Record the class, never the message (it may hold request data).
        log.exception("run %s failed", run_id)
        status, error, output = "error", type(exc).__name__, "".join(partial)
    await record_tokens(tenant, usage.get("total_tokens", 0))
    await _finish(
        run, writer, status=status, error=error, output=output, last_agent=last_agent, usage=usage
    )


def _max_turns(run: Run) -> int:
    """ASCENT_MAX_TURNS, lowered by the run's `config.recursion_limit` when it asks for less."""
    limit = get_settings().max_turns
    asked = (run.config or {}).get("recursion_limit")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(limit, asked)
    return limit


async def _finish(
    run: Run,
    writer: EventWriter,
    *,
    status: str,
    error: str | None,
    output: str,
    last_agent: str,
    usage: dict[str, int],
) -> None:
    """Persist the final state, the closing events and the outcome in one transaction."""
    assert run.thread_id is not None
    session = conversation_session(run.tenant_id, run.thread_id)
    items = await session.get_items()
    rows = await writer.take_pending()
    rows.append(writer.stage("values", {"messages": to_messages(items)}))
    if status == "error":
        rows.append(writer.stage("error", {"error": "RunError", "message": error or "failed"}))
    rows.append(writer.stage("end", {"run_id": run.id, "status": status}))
    async with db_session() as db:
        await repo.append_run_events(
            session=db, tenant_id=run.tenant_id, run_id=run.id, events=rows
        )
        finished = await repo.transition_run(
            session=db,
            run_id=run.id,
            from_status="running",
            held_by=run.lease_owner,
            status=status,
            error=error,
            output=output,
            last_agent=last_agent,
            finished_at=utcnow(),
            history_len=len(items),
            lease_expires_at=None,
            **usage,
        )
        if not finished:
            # Another worker took the run over (this one's lease lapsed) or it already ended:
            # its outcome stands; write nothing.
            await db.rollback()
            log.warning("run %s: outcome not recorded, the run is no longer ours", run.id)
            return
        await repo.release_thread(
            session=db,
            tenant_id=run.tenant_id,
            thread_id=run.thread_id,
            run_id=run.id,
            status="error" if status in ("error", "timeout") else "idle",
        )
        await events.record_event(
            session=db,
            tenant_id=run.tenant_id,
            type=events.run_event_type(status, error),
            subject=run.id,
            data=events.run_event_data(run, status=status, error=error),
        )
        if run.on_completion == "delete":
            # In the outcome's transaction: a client that sees the run ended never finds its
            # stateless thread still there (the run keeps its row, thread_id NULL).
            await repo.detach_thread(session=db, tenant_id=run.tenant_id, thread_id=run.thread_id)
        await db.commit()
    events.drain_soon()
    if run.on_completion == "delete":
        # The thread is gone, so nothing can read this history any more; clearing it is
        # cleanup. Known limit: a crash right here leaves those unreachable rows behind.
        await conversation_session(run.tenant_id, run.thread_id).clear_session()


async def delete_conversation(tenant_id: str, thread_id: str, *, keep_runs: bool) -> None:
    """Delete a thread and its conversation; keep its runs (thread_id NULL) or delete them too."""
    await conversation_session(tenant_id, thread_id).clear_session()
    async with db_session() as db:
        if keep_runs:
            await repo.detach_thread(session=db, tenant_id=tenant_id, thread_id=thread_id)
        else:
            await repo.delete_thread(session=db, tenant_id=tenant_id, thread_id=thread_id)
        await db.commit()
