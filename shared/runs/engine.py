"""The executor: one lifecycle for every run, whichever API started it.

`execute()` takes a run this instance holds (running, leased to `owner`) to its outcome:

1. open the thread's history (read once for the SQL backend, shared/memory/sessions.py);
2. continue a paused run from its reviews' decisions, or start on its input;
3. run the agent streamed, turning each SDK event into a run event (shared/runs/messages.py)
   that this instance's subscribers get at once and the log stores (shared/runs/live.py);
4. stop on a cancel from any instance (pushed, shared/runs/watch.py), on the timeout, or
   when the lease is lost;
5. write the outcome in one transaction (shared/runs/records.py): status, answer, usage,
   closing events, the turn's history, the thread freed, the terminal CloudEvent (with the
   run's webhook), or the pause for a human (shared/runs/reviews.py). A run that stops before
   tools the client supplied (OpenAI `tools`, shared/runs/client_tools.py) ends `success`
   with those calls in `Outcome.tool_calls` and in the thread: the client executes them.

There is one mapping of what can go wrong (`failure_of`), one usage conversion (`usage_of`),
one pause path and one cancel path; the entry points (shared/runs/service.py and the adapters
in shared/api/) only translate input and output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final, cast

from agents import (
    AgentUpdatedStreamEvent,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    RunConfig,
    Runner,
    RunResultStreaming,
    StreamEvent,
)
from agents.items import TResponseInputItem
from agents.memory import Session
from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter
from sqlalchemy import bindparam, select

from shared.agents.configured import RunAgent, agent_for_run
from shared.agents.mcp_servers import McpServerFailed, mcp_scope
from shared.core.context import RunContext, progress_sink
from shared.core.settings import get_settings
from shared.core.telemetry import log_context
from shared.db import direct
from shared.db.availability import database_unavailable
from shared.db.models import Run
from shared.memory.sessions import HistoryBuffer, build_session, read_history, session_key
from shared.outbox.drain import drain_soon
from shared.platform import observability
from shared.platform.llm import run_config
from shared.platform.notify import RESYNC, Subscription
from shared.runs import client_tools, records, reviews
from shared.runs.live import EventLog, LiveRun
from shared.runs.messages import (
    RECORDED_ON_REQUEST,
    debug_event_of,
    run_events_of,
    sdk_event_json,
    to_messages,
    token_of,
)
from shared.runs.records import Ending, EventRow, NotOurs
from shared.security.ratelimit import record_tokens

log = logging.getLogger(__name__)

REFUSED_INPUT: Final = "[input refused by a guardrail]"
TIMED_OUT: Final = "the run exceeded ASCENT_RUN_TIMEOUT_SECONDS"
Json = dict[str, Any]


@dataclass
class Outcome:
    """How an execution ended, as every adapter needs it.

    `status` is the run's: `success`, `error`, `timeout`, or `interrupted` (cancelled when
    `error == "cancelled"`, otherwise paused for review with `reviews`). `cause` says why a
    run failed: `input_guardrail`, `output_guardrail` (with `guardrail`), `model` (the model
    gave no usable answer), `failed` (an error, class in `error`), `unavailable` (the database
    dropped a connection under it), `lost` (another executor took the run over).
    """

    run_id: str
    thread_id: str | None
    agent: str
    status: str
    output: str = ""
    error: str | None = None
    cause: str | None = None
    guardrail: str | None = None
    last_agent: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    reviews: list[Json] = field(default_factory=list)
    # The client-supplied tools the run stopped at (shared/runs/client_tools.py): the run
    # succeeded, and the client executes them and continues the thread with their outputs.
    tool_calls: list[Json] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        """Whether the run waits for a human decision."""
        return self.status == "interrupted" and self.error is None

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self.status == "interrupted" and self.error == records.CANCELLED


def outcome_of(run: Run) -> Outcome:
    """The outcome a stored, ended run shows (for runs that ended elsewhere or earlier)."""
    return Outcome(
        run_id=run.id,
        thread_id=run.thread_id,
        agent=run.agent,
        status=run.status,
        output=run.output or "",
        error=run.error,
        last_agent=run.last_agent or run.agent,
        usage=usage_columns(run),
    )


def usage_columns(run: Run) -> dict[str, int]:
    """A stored run's token usage."""
    return {
        "requests": run.requests,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "total_tokens": run.total_tokens,
    }


def usage_of(sdk_usage: Any) -> dict[str, int]:
    """The SDK's usage of a run as the run's columns (the one conversion)."""
    return {
        "requests": int(sdk_usage.requests),
        "input_tokens": int(sdk_usage.input_tokens),
        "output_tokens": int(sdk_usage.output_tokens),
        "total_tokens": int(sdk_usage.total_tokens),
    }


@dataclass(frozen=True)
class Failure:
    """What an exception out of a run means: its status, recorded error and cause."""

    status: str
    error: str
    cause: str
    guardrail: str | None = None


def failure_of(exc: BaseException) -> Failure:
    """The one mapping of a run's exceptions (output reviews are handled before this); an MCP
    server failure is cause `mcp`."""
    if isinstance(exc, InputGuardrailTripwireTriggered):
        name = exc.guardrail_result.guardrail.get_name()
        return Failure("error", f"input guardrail tripped: {name}", "input_guardrail", name)
    if isinstance(exc, OutputGuardrailTripwireTriggered):
        name = exc.guardrail_result.guardrail.get_name()
        return Failure("error", f"output guardrail tripped: {name}", "output_guardrail", name)
    if isinstance(exc, ModelBehaviorError | MaxTurnsExceeded):
        return Failure("error", type(exc).__name__, "model")
    mcp = mcp_failure(exc)
    if mcp is not None:
        # Its message names the server and what went wrong, never its URL or headers.
        return Failure("error", str(mcp), "mcp")
    if database_unavailable(exc):
        # The database dropped a connection under the run: the caller answers 503.
        return Failure("error", type(exc).__name__, "unavailable")
    # Provider outages, timeouts and bugs: the class, never the message (may hold request data).
    return Failure("error", type(exc).__name__, "failed")


def mcp_failure(exc: BaseException) -> McpServerFailed | None:
    """The MCP server failure behind an exception (the SDK wraps a tool's), or None."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, McpServerFailed):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def run_input(run: Run) -> str | list[TResponseInputItem]:
    """What the SDK receives: the normalized input messages, or the plain text."""
    if run.input_items:
        return [cast(TResponseInputItem, dict(item)) for item in run.input_items]
    return run.input


def structured_output(final_output: Any) -> Any:
    """A structured output (`output_type`) as a JSON value; None for a text answer."""
    if final_output is None or isinstance(final_output, str):
        return None
    if isinstance(final_output, BaseModel):
        return final_output.model_dump(mode="json")
    try:
        return TypeAdapter(type(final_output)).dump_python(final_output, mode="json")
    except (PydanticSchemaGenerationError, TypeError, ValueError):
        return str(final_output)


def output_text(final_output: Any) -> str:
    """A run's answer as text: a structured output as JSON, text as it is."""
    structured = structured_output(final_output)
    if structured is None:
        return "" if final_output is None else str(final_output)
    return json.dumps(structured, separators=(",", ":"))


def max_turns(run: Run, declared: int | None = None) -> int:
    """The agent's declared limit (else ASCENT_MAX_TURNS), lowered by the run's
    `config.recursion_limit` when it asks for less."""
    limit = declared or get_settings().max_turns
    asked = (run.config or {}).get("recursion_limit")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(limit, asked)
    return limit


def run_config_for(chosen: RunAgent) -> RunConfig:
    """The SDK run config: the shared one, or a copy naming the model the assistant chose
    (the shared one's model, when set, would override the agent's)."""
    shared = run_config()
    if chosen.model is None:
        return shared
    return replace(shared, model=chosen.model)


# --- the lease and the cancel watch --------------------------------------------------------------


class Leases:
    """The leases this instance holds (running runs, and pending runs it waits on), renewed
    together every ASCENT_LEASE_HEARTBEAT_SECONDS (at most a third of the lease).

    One heartbeat per instance, in one transaction, not one task per run. When a renewal finds
    a lease gone (this executor stalled past it and another took the run over), the run's
    `on_lost` stops it: its outcome is the other executor's.
    """

    def __init__(self) -> None:
        """Hold nothing yet; the heartbeat starts with the first lease."""
        self._held: dict[str, tuple[str, Callable[[], None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, run_id: str, owner: str, on_lost: Callable[[], None]) -> None:
        """Renew `owner`'s lease of `run_id` until `drop`."""
        self._held[run_id] = (owner, on_lost)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="leases")

    def drop(self, run_id: str) -> None:
        """Stop renewing a run's lease (its execution here is over)."""
        self._held.pop(run_id, None)

    async def _beat(self) -> None:
        every = get_settings().heartbeat_seconds
        while self._held:
            await asyncio.sleep(every)
            held = [(run_id, owner) for run_id, (owner, _) in self._held.items()]
            try:
                lost = await direct.write(partial(_renew_all, held=held))
            except Exception:
                log.exception("renewing %d lease(s) failed; retrying", len(held))
                continue
            for run_id in lost:
                found = self._held.pop(run_id, None)
                if found is not None:
                    log.warning("run %s: lease lost by %s", run_id, found[0])
                    found[1]()

    async def close(self) -> None:
        """Stop the heartbeat (tests, shutdown)."""
        self._held.clear()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


def _renew_all(tx: direct.Tx, *, held: list[tuple[str, str]]) -> list[str]:
    """Renew each (run, owner) lease; the runs whose lease is no longer that owner's."""
    # In id order, so two instances' heartbeats lock rows in the same order (no deadlock).
    return [
        run_id for run_id, owner in sorted(held) if not records.renew_lease(tx, run_id, owner=owner)
    ]


_LEASES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Leases] = weakref.WeakKeyDictionary()


def leases() -> Leases:
    """This event loop's leases."""
    loop = asyncio.get_running_loop()
    found = _LEASES.get(loop)
    if found is None:
        found = _LEASES[loop] = Leases()
    return found


async def close_leases() -> None:
    """Stop this loop's lease heartbeat (tests, shutdown)."""
    found = _LEASES.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()


class CancelWatch:
    """Stops the streamed run when a cancel is requested on any instance (pushed, not polled).

    It listens on the run's subscription with a callback, so a run costs no watching task: a
    `c` message stops the run at once; a poll or a reconnect re-reads the flag.
    """

    def __init__(self, run_id: str, wakes: Subscription) -> None:
        """Watch `wakes`, the run's subscription (opened before the run could be cancelled)."""
        self.run_id = run_id
        self.cancelled = False
        self.lost = False
        self._result: RunResultStreaming | None = None
        self._check: asyncio.Task[None] | None = None
        wakes.on_message = self._heard

    def attach(self, result: RunResultStreaming) -> None:
        """Cancel this streamed result when the run is cancelled."""
        self._result = result
        if self.cancelled:
            result.cancel("immediate")

    def fire(self) -> None:
        """Stop the run now (a cancel)."""
        self.cancelled = True
        if self._result is not None:
            self._result.cancel("immediate")

    def lose(self) -> None:
        """Stop the run now: its lease went to another executor."""
        self.lost = True
        self.fire()

    def _heard(self, message: str) -> None:
        if self.cancelled:
            return
        if message == "c":
            self.fire()
        elif message in ("poll", RESYNC) and (self._check is None or self._check.done()):
            self._check = asyncio.get_running_loop().create_task(self._recheck())

    async def _recheck(self) -> None:
        if await direct.read(partial(_cancel_requested, run_id=self.run_id)):
            self.fire()

    async def close(self) -> None:
        """Stop watching."""
        if self._check is not None:
            self._check.cancel()
            with suppress(asyncio.CancelledError):
                await self._check


_CANCEL_FLAG = select(records.RUNS.c.cancel_requested).where(
    records.RUNS.c.id == bindparam("run_id")
)


def _cancel_requested(tx: direct.Tx, run_id: str) -> bool:
    found = tx.conn.execute(_CANCEL_FLAG, {"run_id": run_id}).scalar()
    return found is None or bool(found)


# --- history ----------------------------------------------------------------------------------


@dataclass
class History:
    """The thread's conversation for one execution: the SDK session, and how it is written."""

    session: Session
    buffered: HistoryBuffer | None  # SQL: written with the outcome; else the SDK writes it

    @property
    def start(self) -> int | None:
        """The history length before this run's items (SQL backend; else recorded at start)."""
        return None if self.buffered is None else self.buffered.stored_length

    @property
    def pending(self) -> tuple[str, list[Any]] | None:
        """The buffered items to write with the outcome (SQL backend)."""
        if self.buffered is None:
            return None
        return (self.buffered.session_id, self.buffered.pending)

    async def forget_turn(self, refused: str | list[TResponseInputItem]) -> None:
        """Drop a refused input from the history (the SDK saves input before its guardrails
        finish, so a refused message would otherwise reach the model next turn)."""
        if self.buffered is not None:
            await self.buffered.clear_session()
            return
        count = 1 if isinstance(refused, str) else len(refused)
        for _ in range(count):
            if await self.session.pop_item() is None:
                return


async def open_history(run: Run, *, owner: str, fresh: bool, taken_over: bool) -> History:
    """The run's thread history: buffered on the SQL backend, else the backend's own session."""
    assert run.thread_id is not None
    sid = session_key(run.tenant_id, run.thread_id)
    if get_settings().session_backend == "sql":
        stored = [] if fresh else await direct.read(lambda tx: read_history(tx.conn, sid))
        buffer = HistoryBuffer(sid, stored)
        return History(session=buffer, buffered=buffer)
    session = build_session(run.tenant_id, run.thread_id)
    # The SDK writes this backend as the run goes: remember where the run started, and trim
    # back to it when taking over from a dead executor.
    items = await session.get_items()
    if taken_over and run.history_start is not None:
        for _ in range(max(0, len(items) - run.history_start)):
            await session.pop_item()
    elif run.history_start is None:
        length = len(items)
        await direct.write(
            lambda tx: records.record_history_start(tx, run.id, owner=owner, length=length)
        )
    return History(session=session, buffered=None)


# --- the execution ---------------------------------------------------------------------------


@dataclass
class Execution:
    """One execution of a held run on this instance: its log, lease, cancel watch, history."""

    run: Run
    owner: str
    live: LiveRun
    log: EventLog
    cancel: CancelWatch
    partial: list[str] = field(default_factory=list)
    last_agent: str = ""
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None


async def execute(
    run: Run,
    *,
    owner: str,
    live: LiveRun,
    wakes: Subscription,
    next_seq: int,
    fresh_thread: bool = False,
    taken_over: bool = False,
    maybe_resumed: bool = True,
) -> Outcome:
    """Take a run this instance holds (running, leased to `owner`) to its outcome.

    `next_seq` continues the run's event log; `wakes` is the run's notification subscription,
    opened before the run became cancellable. With `maybe_resumed`, a stored pause is looked
    for (runs handed over by the queue may be continuing after a review).
    """
    entry = entry_point(owner)
    links: list[observability.Link] = []
    if maybe_resumed and observability.active():
        # A resumed run (maybe days later, on another instance) links to the paused one.
        paused = await direct.read(lambda tx: reviews.pause_traceparent(tx, run))
        links = observability.link_to(paused)
    with (
        log_context(tenant_id=run.tenant_id, run_id=run.id, thread_id=run.thread_id),
        observability.span(
            f"run {run.agent}",
            attributes={
                "ascent.run.id": run.id,
                "ascent.thread.id": run.thread_id or "",
                "ascent.tenant.id": run.tenant_id,
                "gen_ai.agent.name": run.agent,
                "ascent.entry_point": entry,
                "ascent.run.resumed": bool(links),
            },
            links=links,
        ) as current,
    ):
        observability.run_started(run.agent, entry)
        started = time.perf_counter()
        try:
            outcome, first_token = await _execute_held(
                run,
                owner=owner,
                live=live,
                wakes=wakes,
                next_seq=next_seq,
                fresh_thread=fresh_thread,
                taken_over=taken_over,
                maybe_resumed=maybe_resumed,
            )
        except BaseException:
            # The stores failed under it (the queue retries): counted, so started == ended.
            seconds = time.perf_counter() - started
            observability.run_ended(
                run.agent, entry, "failed", seconds=seconds, first_token=None, usage={}
            )
            raise
        current.set_attribute("ascent.run.status", outcome.status)
        for key in ("input_tokens", "output_tokens"):
            current.set_attribute(f"gen_ai.usage.{key}", outcome.usage.get(key, 0))
        if outcome.cause is not None:
            current.set_attribute("ascent.run.cause", outcome.cause)
        if outcome.status in ("error", "timeout"):
            current.set_status(observability.Status(observability.StatusCode.ERROR))
        observability.run_ended(
            run.agent,
            entry,
            outcome.status if outcome.cause != "review" else "paused",
            seconds=time.perf_counter() - started,
            first_token=first_token,
            usage=outcome.usage,
        )
    return outcome


def entry_point(owner: str) -> str:
    """Where a run came in, for metrics: `queue`, or the HTTP function that runs it inline."""
    if owner.startswith("q:"):  # shared.runs.service.QUEUED
        return "queue"
    return observability.current_route() or "request"


async def _execute_held(
    run: Run,
    *,
    owner: str,
    live: LiveRun,
    wakes: Subscription,
    next_seq: int,
    fresh_thread: bool,
    taken_over: bool,
    maybe_resumed: bool,
) -> tuple[Outcome, float | None]:
    cancel = CancelWatch(run.id, wakes)
    ex = Execution(run, owner, live, EventLog(live, next_seq=next_seq), cancel)
    ex.last_agent = run.agent
    held = leases()
    held.hold(run.id, owner, cancel.lose)
    try:
        # The run's MCP connections (ASCENT_MCP_CONNECTIONS=per_run) live as long as it does.
        async with mcp_scope():
            outcome = await _execute(
                ex, fresh_thread=fresh_thread, taken_over=taken_over, maybe_resumed=maybe_resumed
            )
    except BaseException:
        # Give the lease up at once, so a redelivery or the sweeper need not wait it out. A
        # queue delivery's message comes back by itself: the sweeper must not send another.
        held.drop(run.id)
        redelivered = entry_point(owner) == "queue" and get_settings().queue_backend != "inline"
        release = partial(
            records.release_lease, run_id=run.id, owner=owner, redelivered=redelivered
        )
        with suppress(Exception):
            await direct.write(release)
        raise
    finally:
        held.drop(run.id)
        await cancel.close()
    if outcome.usage.get("total_tokens"):
        await record_tokens(run.tenant_id, outcome.usage["total_tokens"])
    drain_soon()
    first = None if ex.first_token is None else ex.first_token - ex.started
    return outcome, first


async def _execute(
    ex: Execution, *, fresh_thread: bool, taken_over: bool, maybe_resumed: bool
) -> Outcome:
    run = ex.run
    assert run.thread_id is not None
    # The stores failing here (history, pause) is the infrastructure's, not the run's: raised,
    # so the queue redelivers the message (and finally dead-letters it).
    history = await open_history(run, owner=ex.owner, fresh=fresh_thread, taken_over=taken_over)
    resumed = await direct.read(lambda tx: reviews.load_resumed(tx, run)) if maybe_resumed else None
    try:
        if resumed is not None and resumed.pause.kind == "output":
            answer = reviews.released_answer(resumed)
            await history.session.add_items([{"role": "assistant", "content": answer}])
            return await _end(ex, history, "success", output=answer, last_agent=resumed.pause.agent)
        # The run's own copy of its agent, configured by its assistant (the one place), then
        # by the request itself: OpenAI `instructions` and client-side tools.
        chosen = await agent_for_run(run.tenant_id, run.agent, run.config)
        agent = client_tools.customize(chosen.agent, run.config)
        context = RunContext(run.tenant_id, run.user_id or "", run.thread_id, run.id)
        given: Any
        if resumed is not None:
            given = await reviews.resumed_state(resumed, agent, context)
        else:
            given = run_input(run)
            new_items = [{"role": "user", "content": given}] if isinstance(given, str) else given
            known = await history.session.get_items(limit=get_settings().history_limit)
            ex.log.emit("values", {"messages": to_messages([*known, *new_items])})
    except Exception as exc:
        log.exception("run %s could not start", run.id)
        failure = failure_of(exc)
        return await _end(ex, None, failure.status, error=failure.error, cause=failure.cause)
    result = Runner.run_streamed(
        agent,
        given,
        session=history.session,
        context=context,
        run_config=run_config_for(chosen),
        max_turns=max_turns(run, chosen.max_turns),
        hooks=chosen.hooks,
    )
    ex.cancel.attach(result)
    with progress_sink(run.id, _progress_sink(ex)):
        return await _drive(ex, history, result)


async def _drive(ex: Execution, history: History, result: RunResultStreaming) -> Outcome:
    """Consume the SDK's stream into run events, then end or pause the run by its outcome."""
    run = ex.run
    asked = RECORDED_ON_REQUEST.intersection(run.stream_mode or ())
    step = 0
    try:
        async with asyncio.timeout(get_settings().run_timeout_seconds):
            async for event in result.stream_events():
                if isinstance(event, AgentUpdatedStreamEvent):
                    ex.last_agent = event.new_agent.name
                    step += 1
                if asked:
                    _record_on_request(ex, asked, event, step)
                for name, data in run_events_of(event, ex.last_agent):
                    token = token_of(name, data)
                    if token is not None:
                        if ex.first_token is None:
                            ex.first_token = time.perf_counter()
                        ex.partial.append(token)
                    ex.log.emit(name, data)
    except TimeoutError:
        result.cancel("immediate")
        return await _end(
            ex,
            history,
            "timeout",
            error=TIMED_OUT,
            cause="timeout",
            usage=usage_of(result.context_wrapper.usage),
            partial=True,
        )
    except OutputGuardrailTripwireTriggered as exc:
        held = exc.guardrail_result
        usage = usage_of(result.context_wrapper.usage)
        if reviews.holds_for_review(held.output.output_info):
            reason = str(held.output.output_info.get("reason") or held.guardrail.get_name())
            pause = reviews.output_pause(
                run, agent=held.agent.name, output=str(held.agent_output), reason=reason
            )
            return await _pause(ex, history, pause, usage)
        failure = failure_of(exc)
        return await _end(
            ex,
            history,
            failure.status,
            error=failure.error,
            cause=failure.cause,
            guardrail=failure.guardrail,
            usage=usage,
            partial=True,
        )
    except InputGuardrailTripwireTriggered as exc:
        failure = failure_of(exc)
        await history.forget_turn(run_input(run))
        return await _end(
            ex,
            history,
            failure.status,
            error=failure.error,
            cause=failure.cause,
            guardrail=failure.guardrail,
            usage=usage_of(result.context_wrapper.usage),
            redact=True,
        )
    except Exception as exc:
        failure = failure_of(exc)
        if failure.cause == "failed":
            log.exception("run %s failed", run.id)
        elif failure.cause == "mcp":
            log.warning("run %s: %s", run.id, failure.error)
        return await _end(
            ex,
            history,
            failure.status,
            error=failure.error,
            cause=failure.cause,
            usage=usage_of(result.context_wrapper.usage),
            partial=True,
        )
    usage = usage_of(result.context_wrapper.usage)
    if ex.cancel.lost:
        return await _lost(ex)
    if ex.cancel.cancelled:
        return await _end(
            ex,
            history,
            "interrupted",
            error=records.CANCELLED,
            cause="cancelled",
            usage=usage,
            partial=True,
        )
    if result.interruptions:
        calls = client_tools.client_calls(result.interruptions, run.config)
        if calls:
            # Stopped before client tools (not a human review): the turn so far, with the
            # model's calls, is the thread's; the client answers them in its next request.
            outcome = await _end(
                ex, history, "success", output="", last_agent=result.last_agent.name, usage=usage
            )
            outcome.tool_calls = calls
            return outcome
        return await _pause(ex, history, reviews.tool_pause(run, result), usage)
    return await _end(
        ex,
        history,
        "success",
        output=output_text(result.final_output),
        last_agent=result.last_agent.name,
        usage=usage,
        structured=structured_output(result.final_output),
    )


def _progress_sink(ex: Execution) -> Callable[[Any], None]:
    """Where a tool's `emit_progress` goes: the run's `custom` events. The SDK runs sync tools
    in a worker thread, so a call from another thread is handed to the run's event loop."""
    loop = asyncio.get_running_loop()

    def emit(data: Any) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            ex.log.emit("custom", data)
        else:
            loop.call_soon_threadsafe(ex.log.emit, "custom", data)

    return emit


def _record_on_request(ex: Execution, asked: frozenset[str], event: StreamEvent, step: int) -> None:
    """The `events` and `debug` events of one SDK event, for a run that asked for them."""
    if "events" in asked:
        ex.log.emit("events", sdk_event_json(event))
    if "debug" in asked:
        debug = debug_event_of(event, step)
        if debug is not None:
            ex.log.emit("debug", debug)


async def _closing(ex: Execution, history: History | None) -> tuple[list[EventRow], list[Any]]:
    """The events still to store, and the thread's items now (for the final `values`)."""
    pending = await ex.log.drain()
    items = await history.session.get_items() if history is not None else []
    return pending, items


async def _end(
    ex: Execution,
    history: History | None,
    status: str,
    *,
    output: str | None = None,
    error: str | None = None,
    cause: str | None = None,
    guardrail: str | None = None,
    last_agent: str | None = None,
    usage: dict[str, int] | None = None,
    partial: bool = False,
    redact: bool = False,
    structured: Any = None,
) -> Outcome:
    """Write the run's outcome in one transaction and show its closing events here.

    A structured output is also the final state's `structured_response` (LangGraph's key for a
    response format), so Agent Protocol clients read it as JSON.
    """
    if partial and output is None:
        output = "".join(ex.partial)
    pending, items = await _closing(ex, history)
    state: dict[str, Any] = {"messages": to_messages(items)}
    if structured is not None:
        state["structured_response"] = structured
    values = ex.log.stage("values", state)
    ending = Ending(
        output=output if output is not None else "",
        last_agent=last_agent or ex.last_agent,
        usage=usage or {},
        events=[*pending, values],
        next_seq=ex.log.next_seq,
        history_len=len(items) if history is not None else None,
        history_start=history.start if history is not None else None,
        history=history.pending if history is not None else None,
        redact_input=REFUSED_INPUT if redact else None,
    )
    run = ex.run
    try:
        rows = await direct.write(
            lambda tx: records.end_run(
                tx,
                run,
                from_status="running",
                status=status,
                error=error,
                held_by=ex.owner,
                ending=ending,
            )
        )
    except NotOurs:
        return await _lost(ex)
    ex.log.push_closing([r for r in rows if r[0] >= values[0]])
    return Outcome(
        run_id=run.id,
        thread_id=run.thread_id,
        agent=run.agent,
        status=status,
        output=ending.output or "",
        error=error,
        cause=cause,
        guardrail=guardrail,
        last_agent=ending.last_agent or run.agent,
        usage=ending.usage,
    )


async def _pause(
    ex: Execution, history: History, pause: reviews.Pause, usage: dict[str, int]
) -> Outcome:
    """Stop the run for a human: the pause, its reviews and the turn so far, in one go."""
    pending, items = await _closing(ex, history)
    first_closing = ex.log.next_seq
    ending = Ending(
        usage=usage,
        events=pending,
        next_seq=first_closing,
        history_len=len(items),
        history_start=history.start,
        history=history.pending,
    )
    run = ex.run
    messages = to_messages(items)
    # The run span's context, kept with the review so its resume can link back to it.
    trace = observability.traceparent()
    try:
        rows = await direct.write(
            lambda tx: reviews.stage_pause(
                tx, run, pause, held_by=ex.owner, ending=ending, messages=messages, trace=trace
            )
        )
    except NotOurs:
        return await _lost(ex)
    ex.log.push_closing([r for r in rows if r[0] >= first_closing])
    return Outcome(
        run_id=run.id,
        thread_id=run.thread_id,
        agent=run.agent,
        status="interrupted",
        cause="review",
        last_agent=pause.pause.agent,
        usage=usage,
        reviews=[reviews.review_json(r) for r in pause.reviews],
    )


async def _lost(ex: Execution) -> Outcome:
    """The run is no longer ours: report what it is now, write nothing."""
    log.warning("run %s: outcome not recorded, the run is no longer %s's", ex.run.id, ex.owner)
    await ex.log.drain()
    current = await direct.read(lambda tx: records.load_run(tx, ex.run.id))
    outcome = outcome_of(current) if current is not None else outcome_of(ex.run)
    outcome.cause = "lost"
    return outcome
