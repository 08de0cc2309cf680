"""A thread's state as LangGraph clients read and write it: `get_state`, `update_state`,
history and copy, all on one list of checkpoints.

A checkpoint is a thread state: its messages (a prefix of the thread's conversation), its
values, and where it came from. There are three kinds, and one id space:

- a finished run's state (`checkpoint_id` = the run id): the conversation up to the run's
  `history_len`;
- a paused run's state while it waits for review (`checkpoint_id` derived from the run id and
  the pause's event seq), with the review as an interrupt, `next` = the paused agent and one
  task carrying the interrupts;
- a state written by `update_state` or by `copy` (a `thread_checkpoints` row). A copy's first
  checkpoint keeps the source's current checkpoint id, so both threads agree on where they
  forked.

`get_state` is the newest checkpoint; history lists them newest first; a past checkpoint is
readable by id. Limits: `update_state` applies to the current state only (forking from a past
checkpoint answers 422), and not while a run holds or pauses the thread (409: decide or cancel
the paused run first, as its review expects the state it paused on).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from shared.api.protocol import (
    Json,
    message_items,
    thread_json,
    visible_thread,
)
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import Run, Thread, ThreadCheckpoint, new_id, utcnow
from shared.db.types import as_utc
from shared.db.views import iso
from shared.memory.sessions import build_session
from shared.runs.messages import to_messages
from shared.security import thread_access
from shared.security.auth import Principal
from shared.security.data_policy import policy_for

# Namespace of the ids of paused states (uuid5 of the run id and the pause's event seq).
_PAUSE_NS = uuid.UUID("6f1f3b0e-2b1c-4d3e-9a57-5d0c1a9e4b21")


class CheckpointRef(BaseModel):
    """A checkpoint as LangGraph clients send it (only `checkpoint_id` is read)."""

    model_config = ConfigDict(extra="ignore")

    checkpoint_id: str | None = Field(None, max_length=64)


class StateUpdate(BaseModel):
    """Body of `POST /threads/{thread_id}/state` (LangGraph `update_state`)."""

    model_config = ConfigDict(extra="ignore")

    values: Json | list[Json] | None = None
    as_node: str | None = Field(None, max_length=100)
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = Field(None, max_length=64)


class StateAt(BaseModel):
    """Body of `POST /threads/{thread_id}/state/checkpoint`."""

    model_config = ConfigDict(extra="ignore")

    checkpoint: CheckpointRef


@dataclass
class _Checkpoint:
    """One thread state before rendering: where its messages end, and what it carries."""

    checkpoint_id: str
    created_at: datetime
    history_len: int  # -1: the whole conversation (a paused run's state)
    values: Json
    metadata: Json
    parent_id: str | None = None
    interrupts: list[Json] | None = None
    agent: str | None = None


def _ref(thread_id: str, checkpoint_id: str | None) -> Json:
    return {
        "thread_id": thread_id,
        "checkpoint_ns": "",
        "checkpoint_id": checkpoint_id,
        "checkpoint_map": None,
    }


def _render(thread: Thread, point: _Checkpoint, items: list[Any]) -> Json:
    """A checkpoint in LangGraph `ThreadState` shape (`messages` also at the top level)."""
    messages = to_messages(items[: point.history_len])
    interrupts = point.interrupts or []
    tasks: list[Json] = []
    if interrupts:
        tasks.append(
            {
                # The paused run is the task: thread["interrupts"] is keyed by the same id.
                "id": str(point.metadata.get("run_id") or point.checkpoint_id),
                "name": point.agent or "agent",
                "path": [],
                "error": None,
                "interrupts": interrupts,
                "checkpoint": None,
                "state": None,
                "result": None,
            }
        )
    return {
        "values": {**point.values, "messages": messages},
        "messages": messages,
        "next": [point.agent or "agent"] if interrupts else [],
        "tasks": tasks,
        "checkpoint": _ref(thread.id, point.checkpoint_id),
        "parent_checkpoint": _ref(thread.id, point.parent_id) if point.parent_id else None,
        "metadata": point.metadata,
        "created_at": iso(point.created_at),
        "interrupts": interrupts,
    }


async def _checkpoints(tenant_id: str, thread: Thread) -> list[_Checkpoint]:
    """Every checkpoint of a thread, newest first, each linked to the one before it."""
    values = dict(thread.values_ or {})
    async with db_session() as db:
        runs = await repo.search_runs(session=db, tenant_id=tenant_id, thread_id=thread.id)
        rows = (
            await db.exec(
                select(ThreadCheckpoint).where(
                    col(ThreadCheckpoint.tenant_id) == tenant_id,
                    col(ThreadCheckpoint.thread_id) == thread.id,
                )
            )
        ).all()
        paused = await _paused_state(db, tenant_id, thread, runs)
    points = [
        _Checkpoint(
            checkpoint_id=run.id,
            created_at=as_utc(run.finished_at or run.created_at),
            history_len=run.history_len,
            values=values,
            metadata={
                "source": "loop",
                "run_id": run.id,
                "status": run.status,
                "agent_id": run.agent,
            },
            agent=run.last_agent or run.agent,
        )
        for run in runs
        if run.history_len is not None
    ]
    points += [
        _Checkpoint(
            checkpoint_id=row.checkpoint_id,
            created_at=as_utc(row.created_at),
            history_len=row.history_len,
            values=dict(row.values_ or {}),
            metadata=dict(row.metadata_ or {}),
        )
        for row in rows
    ]
    if paused is not None:
        points.append(paused)
    points.sort(key=lambda p: (p.created_at, p.checkpoint_id), reverse=True)
    for newer, older in zip(points, points[1:], strict=False):
        newer.parent_id = older.checkpoint_id
    return points


async def _paused_state(
    db: Any, tenant_id: str, thread: Thread, runs: Sequence[Run]
) -> _Checkpoint | None:
    """The state a paused run waits in (its review as an interrupt), or None."""
    if thread.status != "interrupted" or thread.active_run_id is None:
        return None
    run = next((r for r in runs if r.id == thread.active_run_id), None)
    if run is None or run.status != "interrupted" or run.error is not None:
        return None
    event = await repo.last_run_event(
        session=db, tenant_id=tenant_id, run_id=run.id, event="values"
    )
    data = event.data if event is not None and isinstance(event.data, dict) else {}
    seq = event.seq if event is not None else 0
    return _Checkpoint(
        checkpoint_id=str(uuid.uuid5(_PAUSE_NS, f"{run.id}:{seq}")),
        created_at=as_utc(event.created_at if event is not None else run.created_at),
        # The whole conversation so far: the thread's history holds the paused turn.
        history_len=-1,
        values=dict(thread.values_ or {}),
        metadata={"source": "loop", "run_id": run.id, "status": "interrupted"},
        interrupts=list(data.get("__interrupt__") or []),
        agent=run.last_agent or run.agent,
    )


async def _items(tenant_id: str, thread_id: str) -> list[Any]:
    return list(await build_session(tenant_id, thread_id).get_items())


async def get_state(
    principal: Principal, thread_id: str, *, checkpoint_id: str | None = None
) -> Json:
    """The thread's current state, or a past one by checkpoint id (404 when unknown)."""
    thread = await visible_thread(principal, thread_id)
    items = await _items(principal.tenant_id, thread.id)
    points = await _checkpoints(principal.tenant_id, thread)
    if checkpoint_id is not None:
        point = next((p for p in points if p.checkpoint_id == checkpoint_id), None)
        if point is None:
            raise NotFound(f"No checkpoint {checkpoint_id!r} on this thread.")
        return _render(thread, _fixed(point, items), items)
    if not points:
        # A thread no run or update has touched: its state is what PATCH put there, and it
        # has no checkpoint yet (checkpoint_id null, as LangGraph answers for a new thread).
        empty = _Checkpoint(
            checkpoint_id="",
            created_at=as_utc(thread.created_at),
            history_len=len(items),
            values=dict(thread.values_ or {}),
            metadata={},
        )
        state = _render(thread, empty, items)
        state["checkpoint"]["checkpoint_id"] = None
        return state
    return _render(thread, _fixed(points[0], items), items)


def _fixed(point: _Checkpoint, items: list[Any]) -> _Checkpoint:
    """A paused state with no messages of its own shows the whole conversation."""
    if point.history_len < 0:
        point.history_len = len(items)
    return point


async def history(principal: Principal, thread_id: str, *, limit: int = 10) -> list[Json]:
    """The thread's states, newest first (at most `limit`)."""
    thread = await visible_thread(principal, thread_id)
    items = await _items(principal.tenant_id, thread.id)
    points = await _checkpoints(principal.tenant_id, thread)
    return [_render(thread, _fixed(p, items), items) for p in points[:limit]]


async def update_state(principal: Principal, thread_id: str, body: StateUpdate) -> Json:
    """Apply `values` to the thread's current state as a new checkpoint.

    `messages` are appended to the conversation; every other key is merged into the thread's
    values. Answers 409 while a run holds or pauses the thread, 422 for a past checkpoint.
    """
    thread = await visible_thread(principal, thread_id)
    if thread.status in ("busy", "interrupted"):
        raise Conflict(
            "The thread is busy or paused for review; wait for its run, or decide or cancel it."
        )
    # The tenant's data policy before anything is stored: values carry messages of any role.
    values = (await policy_for(principal.tenant_id)).check_deep(body.values)
    points = await _checkpoints(principal.tenant_id, thread)
    current = points[0].checkpoint_id if points else None
    given = body.checkpoint.checkpoint_id if body.checkpoint else body.checkpoint_id
    if given is not None and given != current:
        raise ValidationFailed("update_state applies to the current checkpoint only.")
    updates = values if isinstance(values, list) else [values or {}]
    messages: list[Json] = []
    merged: Json = {}
    for update in updates:
        found = update.get("messages")
        if found is not None:
            if not isinstance(found, list):
                raise ValidationFailed("`values.messages` must be a list of messages.")
            messages += message_items(found)
        merged |= {k: v for k, v in update.items() if k != "messages"}
    session = build_session(principal.tenant_id, thread.id)
    if messages:
        await session.add_items(messages)  # type: ignore[arg-type]
    length = len(await session.get_items())
    checkpoint_id = new_id()
    async with db_session() as db:
        row = await repo.get_thread(session=db, tenant_id=principal.tenant_id, thread_id=thread.id)
        if row is None:
            raise NotFound(f"No thread {thread_id!r}.")
        row.values_ = {**(row.values_ or {}), **merged} if merged else row.values_
        row.updated_at = utcnow()
        db.add(row)
        db.add(
            ThreadCheckpoint(
                thread_id=thread.id,
                checkpoint_id=checkpoint_id,
                tenant_id=principal.tenant_id,
                parent_checkpoint_id=current,
                history_len=length,
                values_=dict(row.values_ or {}),
                metadata_={
                    "source": "update",
                    "writes": {body.as_node or "__input__": values},
                },
            )
        )
        await db.commit()
    return {"checkpoint": _ref(thread.id, checkpoint_id)}


async def copy(principal: Principal, thread_id: str) -> Json:
    """A new thread, owned by the copier, with the source's metadata, values and conversation,
    whose first checkpoint is the source's current one (runs and grants are not copied)."""
    source = await visible_thread(principal, thread_id)
    items = await _items(principal.tenant_id, source.id)
    points = await _checkpoints(principal.tenant_id, source)
    async with db_session() as db:
        thread = await repo.create_thread(
            session=db,
            tenant_id=principal.tenant_id,
            metadata=dict(source.metadata_ or {}),
            values=dict(source.values_) if source.values_ else None,
            owner_id=thread_access.owner_for(principal),
        )
        if points:
            db.add(
                ThreadCheckpoint(
                    thread_id=thread.id,
                    checkpoint_id=points[0].checkpoint_id,
                    tenant_id=principal.tenant_id,
                    history_len=len(items),
                    values_=dict(source.values_ or {}),
                    metadata_={"source": "fork", "copied_from": source.id},
                )
            )
        await db.commit()
    if items:
        await build_session(principal.tenant_id, thread.id).add_items(items)
    return thread_json(thread, to_messages(items))
