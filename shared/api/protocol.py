"""Agent Protocol (0.1.6) service, plus the LangGraph thread-scoped run paths' semantics.

Statuses. Runs: `pending` (persisted, waiting for `after_seconds` or its turn on the thread),
`running`, then one of `success`, `error`, `timeout` (ASCENT_RUN_TIMEOUT_SECONDS) or
`interrupted`. Threads: `idle`, `busy` (a run holds it), `error` (its last run failed or timed
out; a new run may still start), `interrupted` (reserved for human-in-the-loop pauses).

Execution. Every run goes through the one run engine (shared/runs/): `/runs/wait` and
`/runs/stream` execute on the instance that received them (leased, so a crash is recovered);
`POST /runs` goes through the `agent-runs` queue. Waits, joins and streams are woken by pushes
from whichever instance executes the run (shared/runs/watch.py), not by polling.

Cancel. `POST .../cancel` sets the run's `cancel_requested` flag and notifies its executor. A
pending run ends at once; a running one stops as soon as its executor hears of it. Like
LangGraph's default cancel action (`interrupt`), a cancelled run ends `interrupted` with
`error: "cancelled"` and `cancel_reason: "cancelled"`, keeping its persisted events and partial
output; its thread goes back to `idle`.

Multitask (a run for a busy thread). `multitask_strategy="reject"` (the default) answers 409
when the thread is busy or has runs waiting; `"enqueue"` persists the run `pending` and it
starts when the thread is free, in creation order. `interrupt` cancels the thread's active,
pending and paused runs (keeping what they wrote), then starts the new run; `rollback` cancels
them and also deletes them and what they added to the conversation. Both wait (pushed, at most
STOP_WAIT_SECONDS) for the cancelled runs to end, and answer 409 if one has not.

Stateless runs (no `thread_id`) run on a new thread; `on_completion="delete"` (their default)
deletes that thread and its conversation when the run ends, and keeps the run (thread_id null).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from shared.agents import CATALOG, AgentSpec, configured
from shared.api import sse
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.core.settings import get_settings
from shared.db import direct, repo
from shared.db.engine import db_session
from shared.db.models import Run, Thread, new_id, utcnow
from shared.db.views import aware, iso, run_json
from shared.memory.sessions import build_session
from shared.outbox.webhooks import check_scheme
from shared.runs import reviews, service
from shared.runs.dispatch import spawn
from shared.runs.engine import Outcome
from shared.runs.messages import (
    ALL_MODES,
    STREAM_MODES,
    selected_events,
    to_messages,
)
from shared.runs.records import NewRun
from shared.runs.watch import PAGE, follow, read_events
from shared.security import thread_access
from shared.security.auth import Principal

Json = dict[str, Any]
MAX_PAGE = 1000
MAX_BATCH = 100  # runs per `POST /runs/batch`
# How long `interrupt`/`rollback` (and cancel with action=rollback) wait for a cancelled run
# to end before answering 409: a live executor hears a cancel within milliseconds; a dead one
# is recovered by the sweeper only after its lease expires.
STOP_WAIT_SECONDS = 30.0
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}
_ROLES |= {"system": "system", "developer": "developer"}


# --- request bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    """Base of the bodies: unknown LangGraph fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class Page(_Body):
    """`limit` and `offset` of the search endpoints."""

    limit: int = Field(10, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0)


class AgentSearch(Page):
    """Body of `POST /agents/search`."""

    name: str | None = None
    metadata: Json | None = None


class ThreadCreate(_Body):
    """Body of `POST /threads`."""

    thread_id: uuid.UUID | None = None
    metadata: Json | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadSearch(Page):
    """Body of `POST /threads/search`."""

    metadata: Json | None = None
    values: Json | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadCount(_Body):
    """Body of `POST /threads/count`: the search filters, without paging."""

    metadata: Json | None = None
    values: Json | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadPrune(_Body):
    """Body of `POST /threads/prune`."""

    thread_ids: list[uuid.UUID] = Field(..., min_length=1, max_length=MAX_PAGE)
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadPatch(_Body):
    """Body of `PATCH /threads/{thread_id}`: merge metadata and values, append messages."""

    metadata: Json | None = None
    values: Json | None = None
    messages: list[Json] | None = None


class RunSearch(Page):
    """Body of `POST /runs/search`."""

    metadata: Json | None = None
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"] | None = (
        None
    )
    thread_id: uuid.UUID | None = None
    agent_id: str | None = None


class RunsCancel(_Body):
    """Body of `POST /runs/cancel`: which runs to cancel (at least one filter)."""

    thread_id: uuid.UUID | None = None
    run_ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=MAX_PAGE)
    status: Literal["pending", "running", "all"] | None = None


class RunCreate(_Body):
    """Body of the run-creating endpoints (Agent Protocol `RunCreate` + LangGraph's fields)."""

    thread_id: uuid.UUID | None = None
    agent_id: str | None = Field(None, max_length=100)
    assistant_id: str | None = Field(None, max_length=100)
    input: str | Json | list[Json] | None = None
    messages: list[Json] | None = None
    command: Json | None = None
    metadata: Json | None = None
    config: Json | None = None
    webhook: str | None = Field(None, min_length=1, max_length=65536)
    on_completion: Literal["delete", "keep"] | None = None
    on_disconnect: Literal["cancel", "continue"] = "cancel"
    if_not_exists: Literal["create", "reject"] = "reject"
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "reject"
    stream_mode: str | list[str] | None = None
    after_seconds: int | None = Field(None, ge=0)

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: str | list[str] | None) -> str | list[str] | None:
        for mode in [value] if isinstance(value, str) else value or []:
            if mode not in STREAM_MODES:
                raise ValueError(f"unknown stream mode; use one of {sorted(STREAM_MODES)}")
        return value

    @property
    def agent(self) -> str:
        """The agent to run: agent_id, or its LangGraph synonym assistant_id, or the default."""
        return self.agent_id or self.assistant_id or get_settings().default_agent

    @property
    def modes(self) -> list[str] | None:
        """The requested stream modes as a list (None when not given)."""
        if self.stream_mode is None:
            return None
        return [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode


class RunBatch(RootModel[list[RunCreate]]):
    """Body of `POST /runs/batch`: background runs to create, in order."""

    root: list[RunCreate] = Field(..., min_length=1, max_length=MAX_BATCH)


# --- helpers ---------------------------------------------------------------------------------


def _matches(have: Json | None, want: Json | None) -> bool:
    """Containment filter: every key of `want` is in `have` with an equal value."""
    return all((have or {}).get(k) == v for k, v in (want or {}).items())


def parse_id(value: str, kind: str) -> str:
    """A path id, normalized; an id that is not a UUID is reported as not found."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"No {kind} {value!r}.") from None


def message_items(messages: list[Json]) -> list[Json]:
    """Agent Protocol / LangGraph messages as Agents SDK input items."""
    items: list[Json] = []
    for index, message in enumerate(messages):
        role = _ROLES.get(str(message.get("role") or message.get("type") or ""))
        content = message.get("content")
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            content = "".join(t for t in texts if isinstance(t, str))
        if role is None or not isinstance(content, str) or not content.strip():
            raise ValidationFailed(
                "Each message needs a role (user, assistant, system, developer) and text content.",
                errors=[{"loc": ["messages", index], "msg": "invalid message"}],
            )
        items.append({"role": role, "content": content})
    return items


def normalize_input(body: RunCreate) -> list[Json]:
    """The run's input as SDK items: a string, `{"messages": [...]}`, a message list, or
    `messages`."""
    if body.command is not None:
        raise ValidationFailed("`command` (resuming interrupts) is not supported yet.")
    given: Any = body.input
    if isinstance(given, dict):
        if "messages" not in given or not isinstance(given["messages"], list):
            raise ValidationFailed('An object input must be {"messages": [...]}.')
        given = given["messages"]
    if given is None and body.messages:
        given = body.messages
    if isinstance(given, str):
        if not given.strip():
            raise ValidationFailed("The input must not be blank.")
        items = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given:
        items = message_items(given)
    else:
        raise ValidationFailed("Give an input: a string or a list of messages.")
    total = sum(len(i["content"]) for i in items)
    limit = get_settings().max_input_chars
    if total > limit:
        raise ValidationFailed(f"The input may be at most {limit} characters.")
    return items


# --- agents ----------------------------------------------------------------------------------


def agent_json(spec: AgentSpec) -> Json:
    """An Agent of the catalog in Agent Protocol shape."""
    return {
        "agent_id": spec.name,
        "assistant_id": spec.name,
        "graph_id": spec.name,
        "name": spec.name,
        "description": spec.description,
        "metadata": {},
        "capabilities": {"ap.io.messages": True, "ap.io.streaming": True},
    }


def search_agents(body: AgentSearch) -> list[Json]:
    """Catalog agents matching a name (substring) and metadata."""
    found = [
        agent_json(spec)
        for spec in CATALOG.values()
        if (body.name is None or body.name.lower() in spec.name.lower())
        and _matches({}, body.metadata)
    ]
    return found[body.offset : body.offset + body.limit]


def get_agent_info(agent_id: str) -> Json:
    """One catalog agent, or NotFound."""
    spec = CATALOG.get(agent_id)
    if spec is None:
        raise NotFound(f"No agent {agent_id!r}.")
    return agent_json(spec)


_MESSAGE_SCHEMA: Json = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["user", "assistant", "system", "developer", "tool"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
}
_STATE_SCHEMA: Json = {
    "type": "object",
    "properties": {"messages": {"type": "array", "items": _MESSAGE_SCHEMA}},
}


def agent_schemas(agent_id: str) -> Json:
    """Input, output, state and config JSON Schemas of an agent."""
    get_agent_info(agent_id)
    return {
        "agent_id": agent_id,
        "input_schema": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                _STATE_SCHEMA,
                {"type": "array", "items": _MESSAGE_SCHEMA},
            ]
        },
        "output_schema": _STATE_SCHEMA,
        "state_schema": _STATE_SCHEMA,
        "config_schema": {
            "type": "object",
            "properties": {
                "recursion_limit": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}},
                "configurable": {"type": "object"},
            },
        },
    }


# --- threads ---------------------------------------------------------------------------------


async def thread_items(principal: Principal, thread_id: str) -> list[Any]:
    """A thread's conversation history (SDK items), oldest first (404 unless visible)."""
    thread = await visible_thread(principal, thread_id)
    session = build_session(principal.tenant_id, thread.id)
    return await session.get_items(limit=get_settings().history_limit)


async def _messages(tenant_id: str, thread_id: str) -> list[Json]:
    items = await build_session(tenant_id, thread_id).get_items(limit=get_settings().history_limit)
    return to_messages(items)


def thread_json(
    thread: Thread, messages: list[Json] | None = None, interrupts: Json | None = None
) -> Json:
    """A thread in Agent Protocol shape (`messages` also inside `values` for LangGraph)."""
    values = dict(thread.values_ or {})
    body: Json = {
        "thread_id": thread.id,
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
        "metadata": thread.metadata_ or {},
        "status": thread.status,
        "values": values,
        "interrupts": interrupts or {},
    }
    if messages is not None:
        body["values"] = {**values, "messages": messages}
        body["messages"] = messages
    return body


async def interrupts_of(tenant_id: str, thread: Thread) -> Json:
    """A paused thread's interrupts keyed by its paused run (LangGraph's task id), else {}."""
    if thread.status != "interrupted" or thread.active_run_id is None:
        return {}
    async with db_session() as db:
        event = await repo.last_run_event(
            session=db, tenant_id=tenant_id, run_id=thread.active_run_id, event="values"
        )
    data = event.data if event is not None and isinstance(event.data, dict) else {}
    found = data.get("__interrupt__") or []
    return {thread.active_run_id: found} if found else {}


async def visible_thread(principal: Principal, thread_id: str) -> Thread:
    """The thread if the principal sees it; else 404, the same as for a missing thread."""
    async with db_session() as db:
        thread = await thread_access.find_thread(db, principal, parse_id(thread_id, "thread"))
    if thread is None:
        raise NotFound(f"No thread {thread_id!r}.")
    return thread


async def create_thread(principal: Principal, body: ThreadCreate) -> Json:
    """Create a thread owned by the calling user (with a chosen id when given; `if_exists`
    decides on duplicates)."""
    thread_id = str(body.thread_id) if body.thread_id else None
    if thread_id is not None:
        async with db_session() as db:
            existing = await db.get(Thread, thread_id)
            # Another user's thread is "taken", like another tenant's: never returned.
            visible = existing is not None and await thread_access.can_see(db, principal, existing)
        if existing is not None:
            if visible and body.if_exists == "do_nothing":
                return thread_json(existing, await _messages(principal.tenant_id, thread_id))
            raise Conflict(f"Thread {thread_id!r} already exists.")
    try:
        async with db_session() as db:
            thread = await repo.create_thread(
                session=db,
                tenant_id=principal.tenant_id,
                metadata=body.metadata,
                thread_id=thread_id,
                owner_id=thread_access.owner_for(principal),
            )
            await db.commit()
    except IntegrityError:
        raise Conflict(f"Thread {thread_id!r} already exists.") from None
    return thread_json(thread, [])


async def search_threads(principal: Principal, body: ThreadSearch) -> list[Json]:
    """The threads the principal sees, filtered by metadata, values and status, newest first."""
    async with db_session() as db:
        threads = await repo.search_threads(
            session=db,
            tenant_id=principal.tenant_id,
            status=body.status,
            visible=thread_access.thread_visible(principal),
        )
    found = [
        t
        for t in threads
        if _matches(t.metadata_, body.metadata) and _matches(t.values_, body.values)
    ]
    page = found[body.offset : body.offset + body.limit]
    return [thread_json(t, interrupts=await interrupts_of(principal.tenant_id, t)) for t in page]


async def count_threads(principal: Principal, body: ThreadCount) -> int:
    """How many of the threads the principal sees match the filters."""
    async with db_session() as db:
        threads = await repo.search_threads(
            session=db,
            tenant_id=principal.tenant_id,
            status=body.status,
            visible=thread_access.thread_visible(principal),
        )
    return sum(
        1
        for t in threads
        if _matches(t.metadata_, body.metadata) and _matches(t.values_, body.values)
    )


async def prune_threads(principal: Principal, body: ThreadPrune) -> Json:
    """Delete the given threads (`delete`), or drop all but their newest written checkpoint
    (`keep_latest`). Ids the principal does not see, and threads a run holds, are skipped."""
    pruned = 0
    for given in dict.fromkeys(str(t) for t in body.thread_ids):
        async with db_session() as db:
            thread = await thread_access.find_thread(db, principal, given)
        if thread is None or thread.status in ("busy", "interrupted"):
            continue
        if body.strategy == "delete":
            await delete_thread(principal, thread.id)
        else:
            async with db_session() as db:
                await repo.keep_latest_checkpoint(
                    session=db, tenant_id=principal.tenant_id, thread_id=thread.id
                )
                await db.commit()
        pruned += 1
    return {"pruned_count": pruned}


async def get_thread(principal: Principal, thread_id: str) -> Json:
    """One thread with its current messages."""
    thread = await visible_thread(principal, thread_id)
    messages = await _messages(principal.tenant_id, thread.id)
    return thread_json(thread, messages, await interrupts_of(principal.tenant_id, thread))


async def patch_thread(principal: Principal, thread_id: str, body: ThreadPatch) -> Json:
    """Merge metadata and values into a thread; append messages to its conversation."""
    thread = await visible_thread(principal, thread_id)
    items = message_items(body.messages) if body.messages else []
    async with db_session() as db:
        current = await repo.get_thread(
            session=db, tenant_id=principal.tenant_id, thread_id=thread.id
        )
        if current is None:
            raise NotFound(f"No thread {thread_id!r}.")
        if body.metadata:
            current.metadata_ = {**(current.metadata_ or {}), **body.metadata}
        if body.values:
            values = {k: v for k, v in body.values.items() if k != "messages"}
            current.values_ = {**(current.values_ or {}), **values}
        current.updated_at = utcnow()
        db.add(current)
        await db.commit()
    if items:
        await build_session(principal.tenant_id, thread.id).add_items(items)  # type: ignore[arg-type]
    return await get_thread(principal, thread.id)


async def delete_thread(principal: Principal, thread_id: str) -> None:
    """Delete a thread, its runs, their events and its conversation (409 while runs are active)."""
    thread = await visible_thread(principal, thread_id)
    async with db_session() as db:
        active = [
            r
            for r in await repo.search_runs(
                session=db, tenant_id=principal.tenant_id, thread_id=thread.id
            )
            if r.status in ("pending", "running")
        ]
    if active or thread.status == "busy":
        raise Conflict("The thread has active runs; cancel them first.")
    await service.delete_thread(principal.tenant_id, thread.id)


# --- runs ------------------------------------------------------------------------------------


async def _start_request(
    principal: Principal,
    body: RunCreate,
    *,
    thread_id: str | None,
    entry_point: str,
    default_modes: list[str] | None = None,
    lease_here: bool = False,
) -> NewRun:
    """Validate a run-creating body into the engine's NewRun (404, 409, 422 as documented)."""
    # A catalog agent or an assistant id; the engine resolves which (shared/runs/service.py).
    if not configured.may_name_agent(body.agent):
        raise NotFound(f"No agent {body.agent!r}.")
    items = normalize_input(body)
    if body.webhook is not None:
        check_scheme(body.webhook)
    settings = get_settings()
    if body.after_seconds is not None and body.after_seconds > settings.max_run_delay_seconds:
        raise ValidationFailed(f"after_seconds may be at most {settings.max_run_delay_seconds}.")
    given = thread_id or (str(body.thread_id) if body.thread_id else None)
    return new_run_request(
        principal,
        body,
        thread_id=given,
        items=items,
        entry_point=entry_point,
        default_modes=default_modes,
    )


def new_run_request(
    principal: Principal,
    body: RunCreate,
    *,
    thread_id: str | None,
    items: list[Json],
    entry_point: str,
    default_modes: list[str] | None = None,
    now: datetime | None = None,
    new_thread_metadata: Json | None = None,
    new_thread_owner: str | None = None,
) -> NewRun:
    """The engine's NewRun for a RunCreate (crons build theirs here too)."""
    now = now or utcnow()
    stateless = thread_id is None
    return NewRun(
        run_id=new_id(),
        tenant_id=principal.tenant_id,
        agent=body.agent,
        input_text="\n".join(i["content"] for i in items if i["role"] == "user"),
        input_items=items,
        entry_point=entry_point,
        user_id=principal.user_id or principal.key_id,
        thread_id=thread_id,
        thread_visible=thread_access.thread_visible(principal),
        create_missing_thread=body.if_not_exists == "create",
        new_thread_owner=new_thread_owner or thread_access.owner_for(principal),
        new_thread_metadata=new_thread_metadata,
        metadata=body.metadata or {},
        config=body.config or {},
        webhook=body.webhook,
        # Only a stateless run's own thread is ever deleted: on a client's thread it is `keep`.
        on_completion=(body.on_completion or "delete") if stateless else "keep",
        on_disconnect=body.on_disconnect,
        multitask_strategy=body.multitask_strategy,
        stream_mode=body.modes or default_modes,
        not_before=now + timedelta(seconds=body.after_seconds) if body.after_seconds else None,
    )


async def create_run(principal: Principal, body: RunCreate, *, thread_id: str | None = None) -> Run:
    """`POST /runs` (and the thread-scoped form): persist a pending run and queue it.

    `thread_id` (from a thread-scoped path) overrides the body's. A `command: {"resume": ...}`
    decides the thread's interrupted run instead (shared/runs/reviews.py) and continues it.
    Raises 409 when the thread is busy and the strategy is reject, 404 for an unknown agent or
    thread.
    """
    if body.command is not None:
        return await _resume(principal, body, thread_id)
    new = await _start_request(principal, body, thread_id=thread_id, entry_point="runs")
    await _make_room(principal, body, new.thread_id)
    return await service.submit(new)


async def _resume(principal: Principal, body: RunCreate, thread_id: str | None) -> Run:
    """Decide the thread's interrupted run from `command.resume`; it continues on the queue."""
    assert body.command is not None
    given_thread = thread_id or (str(body.thread_id) if body.thread_id else None)
    run_id, resumes = await reviews.resume_with_command(principal, body.command, given_thread)
    await service.resume(resumes)
    return await get_run(principal, run_id)


@dataclass
class Started:
    """A run a `/runs/wait` or `/runs/stream` request follows, and where its stream starts."""

    run: Run
    after: int
    handle: service.Handle | None


async def start_here(
    principal: Principal,
    body: RunCreate,
    *,
    thread_id: str | None = None,
    entry_point: str,
    default_modes: list[str] | None = None,
) -> Started:
    """`/runs/wait`, `/runs/stream`: create the run and execute it on this instance.

    A `command` resume continues the thread's paused run instead (on the queue); the stream
    then starts after the events of the paused part.
    """
    if body.command is not None:
        given = thread_id or (str(body.thread_id) if body.thread_id else None)
        after = await resume_stream_start(principal, given)
        return Started(await _resume(principal, body, thread_id), after, None)
    new = await _start_request(
        principal, body, thread_id=thread_id, entry_point=entry_point, default_modes=default_modes
    )
    await _make_room(principal, body, new.thread_id)
    handle = await service.run_here(new, principal=principal)
    return Started(handle.run, 0, handle)


async def _make_room(principal: Principal, body: RunCreate, thread_id: str | None) -> None:
    """`interrupt` / `rollback`: stop the thread's unfinished runs before the new one."""
    if thread_id is None or body.multitask_strategy not in ("interrupt", "rollback"):
        return
    async with db_session() as db:
        thread = await thread_access.find_thread(db, principal, thread_id)
        if thread is None:
            return  # the engine answers 404 (or creates it, with if_not_exists=create)
        runs = await repo.search_runs(
            session=db,
            tenant_id=principal.tenant_id,
            thread_id=thread.id,
            visible=thread_access.run_visible(principal),
        )
    unfinished = [r for r in runs if _unfinished(r)]
    await stop_runs(principal, unfinished, rollback=body.multitask_strategy == "rollback")


def _unfinished(run: Run) -> bool:
    """Pending, running, or paused for review."""
    return run.status in ("pending", "running") or (run.status == "interrupted" and not run.error)


async def stop_runs(
    principal: Principal, runs: list[Run], *, rollback: bool, wait: bool = True
) -> None:
    """Cancel runs and wait (pushed) for each to end; with `rollback`, then delete them and
    trim their thread's conversation back to where the earliest of them started.

    Raises Conflict when a run has not ended within STOP_WAIT_SECONDS (its executor is gone
    and its lease not yet expired): nothing is rolled back then.
    """
    for run in runs:
        if run.status == "interrupted":
            await reviews.cancel_paused_run(principal.tenant_id, run.id)
        elif run.status in ("pending", "running"):
            await service.cancel(principal.tenant_id, run.id)
    if not (wait or rollback):
        return
    for run in runs:
        status = await service.wait(principal.tenant_id, run.id, within=STOP_WAIT_SECONDS)
        if status in ("pending", "running"):
            raise Conflict(f"Run {run.id!r} is still stopping; retry shortly.")
    if not rollback:
        return
    starts: dict[str, int] = {}
    async with db_session() as db:
        for run in runs:
            ended = await db.get(Run, run.id)
            if ended is None:
                continue
            if ended.thread_id is not None and ended.history_start is not None:
                start = ended.history_start
                starts[ended.thread_id] = min(start, starts.get(ended.thread_id, start))
            await repo.delete_run(session=db, tenant_id=principal.tenant_id, run_id=run.id)
        await db.commit()
    for thread_id, start in starts.items():
        session = build_session(principal.tenant_id, thread_id)
        extra = len(await session.get_items()) - start
        for _ in range(max(0, extra)):
            await session.pop_item()


async def resume_stream_start(principal: Principal, thread_id: str | None) -> int:
    """The last event seq of the thread's interrupted run: a streamed `command` resume sends the
    resumed part only, not the paused part again (whose `end` would close the stream)."""
    if thread_id is None:
        return 0
    async with db_session() as db:
        thread = await thread_access.find_thread(db, principal, parse_id(thread_id, "thread"))
        if thread is None or thread.active_run_id is None:
            return 0
        return await repo.last_run_event_seq(session=db, run_id=thread.active_run_id)


async def get_run(principal: Principal, run_id: str, *, thread_id: str | None = None) -> Run:
    """A run the principal sees (and of the thread, on thread-scoped paths), or NotFound."""
    stmt = select(Run).where(
        col(Run.id) == parse_id(run_id, "run"), thread_access.run_visible(principal)
    )
    async with db_session() as db:
        run = (await db.exec(stmt)).first()
    if run is None or (thread_id is not None and run.thread_id != parse_id(thread_id, "thread")):
        raise NotFound(f"No run {run_id!r}.")
    return run


async def search_runs(
    principal: Principal,
    body: RunSearch,
    *,
    thread_id: str | None = None,
) -> list[Json]:
    """The runs the principal sees, filtered by thread, agent, status and metadata, newest
    first."""
    tid = thread_id or (str(body.thread_id) if body.thread_id else None)
    if thread_id is not None:
        await visible_thread(principal, thread_id)
    async with db_session() as db:
        runs = await repo.search_runs(
            session=db,
            tenant_id=principal.tenant_id,
            thread_id=tid,
            agent=body.agent_id,
            status=body.status,
            visible=thread_access.run_visible(principal),
        )
    found = [r for r in runs if _matches(r.metadata_, body.metadata)]
    return [run_json(r) for r in found[body.offset : body.offset + body.limit]]


async def delete_run(principal: Principal, run_id: str, *, thread_id: str | None = None) -> None:
    """Delete a finished run and its events (409 while it is pending or running)."""
    run = await get_run(principal, run_id, thread_id=thread_id)
    if run.status not in repo.TERMINAL_RUN_STATUSES:
        raise Conflict("The run is still active; cancel it first.")
    async with db_session() as db:
        await repo.delete_run(session=db, tenant_id=principal.tenant_id, run_id=run.id)
        await db.commit()


async def cancel_run(
    principal: Principal, run_id: str, *, thread_id: str | None = None, wait: bool = False
) -> Run:
    """Cancel a run from any instance: a pending one ends now, a running one as soon as its
    executor hears of it (pushed), a paused one closes its reviews. With `wait`, return once
    it has ended."""
    run = await get_run(principal, run_id, thread_id=thread_id)
    paused = run.status == "interrupted" and run.error is None
    # Waiting for a human review (shared/runs/reviews.py): end it, closing its reviews.
    if paused and await reviews.cancel_paused_run(principal.tenant_id, run.id):
        return await get_run(principal, run.id)
    if run.status in repo.TERMINAL_RUN_STATUSES:
        raise Conflict(f"The run has already ended ({run.status}).")
    await service.cancel(principal.tenant_id, run.id)
    if wait:
        await service.wait(principal.tenant_id, run.id)
    return await get_run(principal, run.id)


async def rollback_run(principal: Principal, run_id: str, *, thread_id: str | None = None) -> None:
    """Cancel a run, then delete it and what it added to its thread's conversation."""
    run = await get_run(principal, run_id, thread_id=thread_id)
    if run.status in repo.TERMINAL_RUN_STATUSES and not _unfinished(run):
        raise Conflict(f"The run has already ended ({run.status}).")
    await stop_runs(principal, [run], rollback=True)


async def cancel_many(principal: Principal, body: RunsCancel, *, rollback: bool = False) -> int:
    """Cancel the runs the filters select (unfinished ones only); how many were cancelled.

    `run_ids` that the principal does not see are ignored; when none of them is seen, 404.
    """
    if body.thread_id is None and body.run_ids is None and body.status is None:
        raise ValidationFailed("Give thread_id, run_ids or status.")
    async with db_session() as db:
        runs = await repo.search_runs(
            session=db,
            tenant_id=principal.tenant_id,
            thread_id=str(body.thread_id) if body.thread_id else None,
            visible=thread_access.run_visible(principal),
        )
    if body.run_ids is not None:
        wanted = {str(r) for r in body.run_ids}
        runs = [r for r in runs if r.id in wanted]
        if not runs:
            raise NotFound("None of the given runs was found.")
    statuses = {"pending": ("pending",), "running": ("running",)}.get(body.status or "all")
    chosen = [r for r in runs if _unfinished(r) and (statuses is None or r.status in statuses)]
    await stop_runs(principal, chosen, rollback=rollback, wait=False)
    return len(chosen)


async def wait_run(principal: Principal, run_id: str) -> Run:
    """Wait (woken by pushes) until the run has ended or ASCENT_RUN_WAIT_SECONDS passed."""
    await service.wait(principal.tenant_id, run_id)
    return await get_run(principal, run_id)


async def wait_started(
    principal: Principal,
    started: Started,
    *,
    gone: Coroutine[Any, Any, None] | None = None,
    cancel: bool = False,
) -> Json:
    """`/runs/wait`: wait up to ASCENT_RUN_WAIT_SECONDS for the run to end, then answer.

    With `cancel` (on_disconnect: cancel), a client that goes away first cancels the run.
    """
    within = get_settings().run_wait_seconds
    watchers: list[asyncio.Future[Any]] = []
    try:
        if started.handle is not None:
            done: asyncio.Future[Any] = asyncio.ensure_future(started.handle.outcome())
        else:
            done = asyncio.ensure_future(service.wait(principal.tenant_id, started.run.id))
        watchers.append(done)
        left: asyncio.Future[Any] | None = None
        if gone is not None:
            left = asyncio.ensure_future(gone)
            watchers.append(left)
        await asyncio.wait(watchers, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if left is not None and left.done() and not done.done() and cancel:
            await service.cancel(principal.tenant_id, started.run.id)
    finally:
        for watcher in watchers:
            if not watcher.done():
                watcher.cancel()
    if started.handle is not None and done.done() and not done.cancelled():
        outcome = done.result() if done.exception() is None else None
        if outcome is not None and outcome.cause != "lost" and not outcome.paused:
            # Ended here: the outcome and the closing events are in memory, as stored (a
            # paused run's record is read back: the pause writes fields the outcome lacks).
            return _wait_response_here(started.handle, outcome)
    return await wait_response(principal, await get_run(principal, started.run.id))


def _wait_response_here(handle: service.Handle, outcome: Outcome) -> Json:
    """`RunWaitResponse` of a run that ended on this instance, without reading it back: the
    run as created plus its outcome, and the final `values` event it pushed."""
    run = handle.run.model_copy()
    run.status, run.error = outcome.status, outcome.error
    run.output, run.last_agent = outcome.output, outcome.last_agent or run.last_agent
    for column, value in outcome.usage.items():
        setattr(run, column, int(getattr(run, column, 0) or 0) + value)
    run.finished_at = run.updated_at = handle.run.finished_at or utcnow()
    final = next((data for _, name, data in reversed(handle.live.events) if name == "values"), None)
    return _wait_body(run, final if isinstance(final, dict) else {})


async def wait_response(principal: Principal, run: Run) -> Json:
    """`RunWaitResponse`: the run, its final values and messages (LangGraph reads `messages`)."""
    async with db_session() as db:
        final = await repo.last_run_event(
            session=db, tenant_id=principal.tenant_id, run_id=run.id, event="values"
        )
    values: Json = final.data if final is not None and isinstance(final.data, dict) else {}
    return _wait_body(run, values)


def _wait_body(run: Run, values: Json) -> Json:
    """The body of a wait answer: the run, its final values and messages, its output."""
    body: Json = {
        "run": run_json(run),
        "values": values,
        "messages": values.get("messages", []),
        "output": run.output,
    }
    if run.status == "interrupted" and values.get("__interrupt__"):
        # Waiting for review: LangGraph clients read the interrupts at the top level.
        body["__interrupt__"] = values["__interrupt__"]
    if run.status == "error":
        body["__error__"] = {"error": "RunError", "message": run.error or "The run failed."}
    return body


def parse_last_event_id(header: str | None) -> int:
    """The seq after which to resume (0: from the start); 422 when it is not ours."""
    if header is None or not header.strip():
        return 0
    try:
        value = int(header.strip())
    except ValueError:
        raise ValidationFailed("Last-Event-ID must be an event id this API sent.") from None
    if value < 0:
        raise ValidationFailed("Last-Event-ID must be an event id this API sent.")
    return value


async def stream_run(
    principal: Principal,
    run: Run,
    *,
    after: int = 0,
    modes: list[str] | None = None,
    cancel_on_disconnect: bool = False,
) -> AsyncIterator[bytes]:
    """SSE of a run: its events after `after` (stored, then live, pushed from any instance)
    until its `end`.

    Only events of the selected stream modes are sent (default: the modes the run was created
    with, else all); ids are the stored seq, so gaps are normal. If the client goes away
    before the run ended and `cancel_on_disconnect`, the run is cancelled.
    """
    wanted = selected_events(modes or run.stream_mode or list(ALL_MODES))
    ended = False
    try:
        async for row in follow(tenant_id=principal.tenant_id, run_id=run.id, after=after):
            if row is None:
                yield sse.KEEPALIVE
                continue
            seq, event, data = row
            if event == "end":
                ended = True
            if event in wanted:
                yield sse.encode(data, event=event, id=str(seq))
        ended = True
    finally:
        if not ended and cancel_on_disconnect:
            # The request task is being cancelled: record the cancel from a task of its own.
            spawn(service.cancel(principal.tenant_id, run.id))


def parse_thread_event_id(header: str | None) -> tuple[str, int] | None:
    """A thread stream's Last-Event-ID (`<run id>/<seq>`) as (run id, seq); 422 when not ours."""
    if header is None or not header.strip():
        return None
    run_id, _, seq = header.strip().partition("/")
    try:
        return str(uuid.UUID(run_id)), int(seq)
    except ValueError:
        raise ValidationFailed("Last-Event-ID must be an event id this API sent.") from None


async def stream_thread(
    principal: Principal,
    thread_id: str,
    *,
    last: tuple[str, int] | None = None,
    modes: list[str] | None = None,
) -> AsyncIterator[bytes]:
    """SSE of a thread (LangGraph `join_stream`): each unfinished run of the thread in turn,
    oldest first, with its own stream modes (or `modes`), event ids `<run id>/<seq>`.

    The stream ends when the thread has no unfinished run left. After `last`, runs created
    before that run are skipped, and that run resumes after its seq.
    """
    thread = await visible_thread(principal, thread_id)
    done: set[str] = set()
    while True:
        async with db_session() as db:
            runs = await repo.search_runs(
                session=db,
                tenant_id=principal.tenant_id,
                thread_id=thread.id,
                visible=thread_access.run_visible(principal),
            )
        ordered = sorted(runs, key=lambda r: (aware(r.created_at), r.id))
        if last is not None:
            index = next((i for i, r in enumerate(ordered) if r.id == last[0]), None)
            ordered = ordered[index:] if index is not None else ordered
        todo = [r for r in ordered if r.id not in done and r.status in ("pending", "running")]
        if last is not None and ordered and ordered[0].id == last[0] and ordered[0].id not in done:
            todo = [ordered[0], *[r for r in todo if r.id != ordered[0].id]]
        if not todo:
            return
        run = todo[0]
        after = last[1] if last is not None and last[0] == run.id else 0
        wanted = selected_events(modes or run.stream_mode or list(ALL_MODES))
        async for row in follow(tenant_id=principal.tenant_id, run_id=run.id, after=after):
            if row is None:
                yield sse.KEEPALIVE
                continue
            seq, event, data = row
            if event in wanted:
                yield sse.encode(data, event=event, id=f"{run.id}/{seq}")
        done.add(run.id)
        last = None


async def run_events_json(principal: Principal, run_id: str) -> list[Json]:
    """A run's stored events (id, event, data), for inspection."""
    run = await get_run(principal, run_id)
    out: list[Json] = []
    after = 0
    while True:
        rows = await direct.read(
            partial(read_events, tenant_id=principal.tenant_id, run_id=run.id, after=after)
        )
        out.extend({"id": seq, "event": event, "data": data} for seq, event, data in rows)
        if len(rows) < PAGE:
            return out
        after = rows[-1][0]
