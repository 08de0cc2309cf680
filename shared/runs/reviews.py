"""Human-in-the-loop reviews: pause a run for a human, decide, resume on any instance, expire.

Pausing. The run engine (shared/runs/engine.py) pauses a run in two ways, whatever entry point
started it:

- tool approval: a write/spend tool's `needs_approval` (shared/security/tool_approval.py)
  stops the run with `interruptions`; `tool_pause` turns them into the SDK's `RunState` JSON
  and one review (kind `tool`) per interruption, holding the tool, its arguments and call id;
- output review: an output guardrail whose tripwire carries `output_info["review"]`
  (billing's `refund_review`) holds the final answer back; `output_pause` makes one review
  (kind `output`) holding it, stored in `run_pauses`, not in the conversation.

`stage_pause` records either in the run's outcome transaction: the run becomes `interrupted`
(error NULL), its thread `interrupted` (still held by the run, so no other run starts on it),
the turn's history so far is kept, and a `values` event carrying `__interrupt__`
(LangGraph's shape; each interrupt's id is its review id) plus an `end` event are written.

Deciding. `decide()` is a compare-and-set `pending -> approved|rejected`: a second decision,
or the loser of two racing reviewers, gets 409 and changes nothing. Every request, decision
and expiry is written to `review_audit` (who, when, what, comment). When no review of the run
is pending any more, the run is set back to `pending` (its thread `busy`, still held) and
`decide` says so (`Decided.resume`): the caller (shared/runs/service.py) hands it to an
executor, which rebuilds the `RunState` from JSON, applies the decisions (`approve`, or
`reject` with a message the agent reads) and continues streaming: tool calls made before the
pause are not repeated, an approved call runs exactly once. An approved output review releases
the held answer (run `success` with it); a rejected one replaces it with `OUTPUT_REFUSAL`.

Expiry. `expire_due_reviews()` (the `expire_reviews` ACA job, every 5 minutes) marks pending
reviews past `expires_at` (ASCENT_REVIEW_TTL_SECONDS after the request) `expired` and ends
their run with status `error` and error `"review expired"`; the pending tool never runs, and a
late decision gets 409. The conversation gets a tool output / assistant note saying so, so the
thread stays valid for the next run. `cancel_paused_run` ends a paused run the same way when
it is cancelled (status `interrupted`, error `cancelled`).

Agent Protocol. `POST /threads/{thread_id}/runs[/wait]` with `command: {"resume": ...}` decides
the thread's interrupted run: `{"resume": {"decision": "approve"}}` (or `"approve"`/`"reject"`)
decides every pending review; `{"resume": {"<interrupt id>": {"decision": ...}}}` one each.

Every query filters on the tenant; another tenant's review id is 404. Within a tenant a review
follows its thread (shared/security/thread_access.py): a user lists, reads and decides only the
reviews of threads they own or were granted; tenant-wide principals see all of them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
from agents import Agent, RunContextWrapper, RunResultStreaming, RunState
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.context import RunContext
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.core.settings import get_settings
from shared.core.validation import MAX_OFFSET, JsonInt
from shared.db import direct
from shared.db.direct import Tx
from shared.db.engine import db_session
from shared.db.models import Run, new_id, utcnow
from shared.db.review_models import Review, ReviewAudit, RunPause, ThreadToolApproval
from shared.db.types import as_utc
from shared.db.views import iso
from shared.memory.sessions import build_session, session_key, stage_history
from shared.outbox import events as outbox
from shared.platform import observability
from shared.platform.notify import get_notifier
from shared.runs import records
from shared.runs.messages import to_messages
from shared.runs.records import (
    RUNS,
    THREADS,
    Ending,
    EventRow,
    NotOurs,
    dispatch_deadline,
    run_topic,
)
from shared.security.auth import Principal
from shared.security.thread_access import find_thread, review_visible
from shared.security.tool_policy import classify, declared_mcp_classes

log = logging.getLogger(__name__)

Json = dict[str, Any]
EXPIRED_ERROR = "review expired"
OUTPUT_REFUSAL = (
    "I'm sorry, I can't confirm that. A reviewer did not approve this answer; "
    "a member of our team will follow up."
)
CONTEXT_MESSAGES = 20

REVIEWS: Table = Review.__table__  # type: ignore[attr-defined]
AUDIT: Table = ReviewAudit.__table__  # type: ignore[attr-defined]
PAUSES: Table = RunPause.__table__  # type: ignore[attr-defined]


# --- request bodies and views -------------------------------------------------------------


class ReviewDecision(BaseModel):
    """Body of `POST /reviews/{review_id}/decision`."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reviewer: str | None = Field(None, min_length=1, max_length=200)
    comment: str | None = Field(None, max_length=4000)
    always_approve_tool_for_thread: bool = False


MAX_AGE_SECONDS = 10 * 365 * 24 * 3600


class ReviewQuery(BaseModel):
    """Query of `GET /reviews`: pending reviews, by agent and age (seconds since requested)."""

    agent: str | None = Field(None, max_length=100)
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"] = "pending"
    # Seconds; bounded at ten years so the cutoff is a representable date.
    min_age: float | None = Field(None, ge=0, le=MAX_AGE_SECONDS)
    max_age: float | None = Field(None, ge=0, le=MAX_AGE_SECONDS)
    limit: JsonInt = Field(50, ge=1, le=1000)
    offset: JsonInt = Field(0, ge=0, le=MAX_OFFSET)


def review_json(review: Review) -> Json:
    """A review as the API shows it."""
    return {
        "review_id": review.id,
        "run_id": review.run_id,
        "thread_id": review.thread_id,
        "agent": review.agent,
        "kind": review.kind,
        "tool": review.tool,
        "call_id": review.call_id,
        "arguments": review.arguments,
        "output": review.output,
        "reason": review.reason,
        "status": review.status,
        "requested_at": iso(review.requested_at),
        "expires_at": iso(review.expires_at),
        "decided_at": iso(review.decided_at),
        "decided_by": review.decided_by,
        "comment": review.comment,
        "always_approve_tool_for_thread": review.always_approve,
        # The tool's impact class (read, write, spend) so a reviewer sees what is at stake.
        "risk": tool_risk(review.tool) if review.kind == "tool" and review.tool else None,
    }


def tool_risk(tool: str) -> str:
    """A tool's risk class: an MCP server's declaration, else the catalog's (spend if unknown)."""
    return declared_mcp_classes().get(tool) or classify(tool)


def interrupt_json(review: Review) -> Json:
    """A review as a LangGraph interrupt (`{"id", "value"}`) in `__interrupt__`."""
    return {"id": review.id, "value": {k: v for k, v in review_json(review).items() if v}}


# --- events (the outbox's call sites) -------------------------------------------------------


def stage_review_event(conn: Any, event_type: str, review: Review) -> None:
    """Record `review.required` / `review.decided` in the outbox, in the caller's transaction.

    The subject is the review (its events are ordered: required, then decided); the data names
    the run, thread, agent, tool and status, never the tool's arguments or the held answer.
    """
    data = {
        "review_id": review.id,
        "run_id": review.run_id,
        "thread_id": review.thread_id,
        "agent_id": review.agent,
        "kind": review.kind,
        "tool": review.tool,
        "status": review.status,
        "decided_by": review.decided_by,
        "expires_at": iso(review.expires_at),
    }
    outbox.stage_event(
        conn, tenant_id=review.tenant_id, type=event_type, subject=review.id, data=data
    )


async def publish_review_event(db: AsyncSession, event_type: str, review: Review) -> None:
    """`stage_review_event` inside an AsyncSession's transaction (the caller commits)."""
    await db.run_sync(lambda s: stage_review_event(s.connection(), event_type, review))


def _audit(
    review: Review, action: str, actor: str, comment: str | None = None, **details: Any
) -> Json:
    return {
        "id": new_id(),
        "tenant_id": review.tenant_id,
        "review_id": review.id,
        "action": action,
        "actor": actor,
        "comment": comment,
        "details": details or None,
        "at": utcnow(),
    }


# --- pausing (for the engine) ---------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Why a run stops for a human: the pause row and its reviews (not yet stored)."""

    pause: RunPause
    reviews: list[Review]


def tool_pause(run: Run, result: RunResultStreaming) -> Pause:
    """A run stopped on tool approvals: its RunState JSON, one review per interruption."""
    agent = result.last_agent.name
    reviews = []
    for item in result.interruptions:
        raw: Any = item.raw_item
        arguments = getattr(raw, "arguments", None)
        if arguments is None and isinstance(raw, dict):
            arguments = raw.get("arguments")
        reviews.append(
            _new_review(
                run,
                agent,
                kind="tool",
                tool=item.tool_name,
                call_id=_call_id(raw),
                arguments=_parse_args(arguments),
            )
        )
    # The context is plain data (shared/core/context.py); the resume passes a fresh one as
    # `context_override`, so serializing it explicitly only avoids the SDK's warning per pause.
    state = result.to_state().to_json(context_serializer=_context_json)
    pause = RunPause(run_id=run.id, tenant_id=run.tenant_id, kind="tool", agent=agent, state=state)
    return Pause(pause, reviews)


def _context_json(context: Any) -> dict[str, Any]:
    """A run context as the JSON a paused run's state keeps."""
    if isinstance(context, RunContext):
        return dataclasses.asdict(context)
    return {}


def output_pause(run: Run, *, agent: str, output: str, reason: str) -> Pause:
    """A run whose final answer an output guardrail sent to a reviewer."""
    review = _new_review(run, agent, kind="output", output=output, reason=reason)
    pause = RunPause(
        run_id=run.id, tenant_id=run.tenant_id, kind="output", agent=agent, output=output
    )
    return Pause(pause, [review])


def _parse_args(arguments: Any) -> Json | None:
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return {"raw": arguments}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return arguments if isinstance(arguments, dict) else None


def _new_review(run: Run, agent: str, *, kind: str, **fields: Any) -> Review:
    now = utcnow()
    return Review(
        id=new_id(),
        tenant_id=run.tenant_id,
        run_id=run.id,
        thread_id=run.thread_id,
        agent=agent,
        kind=kind,
        status="pending",
        requested_at=now,
        expires_at=now + timedelta(seconds=get_settings().review_ttl_seconds),
        always_approve=False,
        **fields,
    )


def stage_pause(
    tx: Tx,
    run: Run,
    paused: Pause,
    *,
    held_by: str | None,
    ending: Ending,
    messages: list[Json],
    trace: str | None = None,
) -> list[EventRow]:
    """Record a pause in the run's outcome transaction (see the module docstring).

    Raises NotOurs (undoing the unit) when the run is no longer this executor's. Returns the
    events it stored: the caller's, a `values` event with `__interrupt__`, and `end`.
    """
    now = utcnow()
    stmt = update(RUNS).where(RUNS.c.id == run.id, RUNS.c.status == "running")
    if held_by is not None:
        stmt = stmt.where(RUNS.c.lease_owner == held_by)
    values: Json = {
        "status": "interrupted",
        "error": None,
        "updated_at": now,
        "lease_expires_at": None,
        "last_agent": paused.pause.agent,
        **ending.usage,
    }
    if ending.history_len is not None:
        values["history_len"] = ending.history_len
    if ending.history_start is not None:
        values["history_start"] = func.coalesce(RUNS.c.history_start, ending.history_start)
    if tx.conn.execute(stmt.values(**values)).rowcount != 1:
        raise NotOurs(run.id)
    tx.conn.execute(delete(PAUSES).where(PAUSES.c.run_id == run.id))
    tx.conn.execute(insert(PAUSES), paused.pause.model_dump())
    for review in paused.reviews:
        tx.conn.execute(insert(REVIEWS), review.model_dump())
        # `traceparent`: the paused run's span, which the resume's run span links to.
        details = {**_details(review), **({"traceparent": trace} if trace else {})}
        tx.conn.execute(insert(AUDIT), _audit(review, "requested", "system", **details))
        stage_review_event(tx.conn, outbox.REVIEW_REQUIRED, review)
    if ending.history is not None:
        stage_history(tx.conn, *ending.history)
    seq = ending.next_seq if ending.next_seq is not None else records.last_seq(tx, run.id) + 1
    interrupts = [interrupt_json(r) for r in paused.reviews]
    rows = [
        *ending.events,
        (seq, "values", {"messages": messages, "__interrupt__": interrupts}),
        (seq + 1, "end", {"run_id": run.id, "status": "interrupted"}),
    ]
    records.append_events(tx, tenant_id=run.tenant_id, run_id=run.id, rows=rows)
    if run.thread_id is not None:
        tx.conn.execute(
            update(THREADS)
            .where(
                THREADS.c.id == run.thread_id,
                THREADS.c.tenant_id == run.tenant_id,
                THREADS.c.active_run_id == run.id,
            )
            .values(status="interrupted", updated_at=now)
        )
    outbox.stage_event(
        tx.conn,
        tenant_id=run.tenant_id,
        type=outbox.RUN_INTERRUPTED,
        subject=run.id,
        data=records.run_event_data(run.id, run.thread_id, run.agent, status="interrupted"),
    )
    get_notifier().notify_in_tx(tx, run_topic(run.id), "end")
    run.status, run.error = "interrupted", None
    return rows


def _details(review: Review) -> Json:
    if review.kind == "tool":
        return {"tool": review.tool, "arguments": review.arguments}
    return {"reason": review.reason}


# --- resuming (for the engine) --------------------------------------------------------------


def holds_for_review(output_info: Any) -> bool:
    """Whether an output guardrail's tripwire means "hold for review" rather than "refuse"."""
    return isinstance(output_info, dict) and output_info.get("review") is True


@dataclass(frozen=True)
class Resumed:
    """A paused run's pause row and its decided reviews, by call id."""

    pause: RunPause
    decided: dict[str | None, Review]


def load_resumed(tx: Tx, run: Run) -> Resumed | None:
    """The pause a resumed run continues from, with its decisions (None: it never paused)."""
    row = (
        tx.conn.execute(
            sa.select(PAUSES).where(PAUSES.c.run_id == run.id, PAUSES.c.tenant_id == run.tenant_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    found = tx.conn.execute(
        sa.select(REVIEWS).where(REVIEWS.c.tenant_id == run.tenant_id, REVIEWS.c.run_id == run.id)
    ).mappings()
    reviews = [Review.model_validate(dict(r)) for r in found]
    decided = {r.call_id: r for r in reviews if r.status != "pending"}
    return Resumed(RunPause.model_validate(dict(row)), decided)


def pause_traceparent(tx: Tx, run: Run) -> str | None:
    """The trace context of the run's latest pause (its review request's audit), or None."""
    found = tx.conn.execute(
        sa.select(AUDIT.c.details)
        .join(REVIEWS, REVIEWS.c.id == AUDIT.c.review_id)
        .where(
            REVIEWS.c.tenant_id == run.tenant_id,
            REVIEWS.c.run_id == run.id,
            AUDIT.c.action == "requested",
        )
        .order_by(AUDIT.c.at.desc())
        .limit(1)
    ).scalar()
    value = found.get("traceparent") if isinstance(found, dict) else None
    return value if isinstance(value, str) else None


def released_answer(resumed: Resumed) -> str:
    """An output review's outcome: the held answer if approved, else `OUTPUT_REFUSAL`."""
    review = next(iter(resumed.decided.values()), None)
    approved = review is not None and review.status == "approved"
    return (resumed.pause.output or "") if approved else OUTPUT_REFUSAL


async def resumed_state(
    resumed: Resumed, agent: Agent[Any], context: RunContext
) -> RunState[Any, Agent[Any]]:
    """The paused RunState, rebuilt from JSON with each interruption approved or rejected."""
    state = await RunState.from_json(
        agent,
        dict(resumed.pause.state or {}),
        context_override=RunContextWrapper(context=context),
    )
    for item in state.get_interruptions():
        review = resumed.decided.get(_call_id(item.raw_item))
        if review is not None and review.status == "approved":
            state.approve(item, always_approve=review.always_approve)
        else:
            state.reject(item, rejection_message=rejection_message(review, item.tool_name))
    return state


def _call_id(raw: Any) -> str | None:
    found = getattr(raw, "call_id", None)
    if found is None and isinstance(raw, dict):
        found = raw.get("call_id")
    return str(found) if found is not None else None


def rejection_message(review: Review | None, tool: str | None) -> str:
    """What the agent reads instead of the tool's output when a reviewer rejected the call."""
    text = f"A human reviewer rejected this {tool or 'tool'} call; it was not executed"
    if review is not None and review.comment:
        text += f". Reviewer's comment: {review.comment}"
    return text + ". Do not retry it; tell the customer it was not approved."


# --- reviewer API ---------------------------------------------------------------------------


async def _review(db: AsyncSession, principal: Principal, review_id: str) -> Review:
    """A review on a thread the principal sees (shared/security/thread_access.py), else 404."""
    stmt = select(Review).where(col(Review.id) == review_id, review_visible(principal))
    review = (await db.exec(stmt)).first()
    if review is None:
        raise NotFound(f"No review {review_id!r}.")
    return review


async def list_reviews(principal: Principal, query: ReviewQuery) -> list[Json]:
    """The reviews in a status (default pending) on threads the principal sees, oldest first."""
    now = utcnow()
    stmt = select(Review).where(review_visible(principal), col(Review.status) == query.status)
    if query.agent is not None:
        stmt = stmt.where(col(Review.agent) == query.agent)
    if query.min_age is not None:
        stmt = stmt.where(col(Review.requested_at) <= now - timedelta(seconds=query.min_age))
    if query.max_age is not None:
        stmt = stmt.where(col(Review.requested_at) >= now - timedelta(seconds=query.max_age))
    stmt = (
        stmt.order_by(col(Review.requested_at), col(Review.id))
        .offset(query.offset)
        .limit(query.limit)
    )
    async with db_session() as db:
        return [review_json(r) for r in (await db.exec(stmt)).all()]


async def get_review(principal: Principal, review_id: str) -> Json:
    """One review with its conversation context: the thread's recent messages."""
    async with db_session() as db:
        review = await _review(db, principal, review_id)
    body = review_json(review)
    messages: list[Json] = []
    if review.thread_id:
        items = await build_session(principal.tenant_id, review.thread_id).get_items(
            limit=CONTEXT_MESSAGES
        )
        messages = to_messages(items)
    body["context"] = {"messages": messages}
    return body


async def review_audit(principal: Principal, review_id: str) -> list[Json]:
    """A review's audit trail, oldest first."""
    async with db_session() as db:
        review = await _review(db, principal, review_id)
        stmt = (
            select(ReviewAudit)
            .where(
                col(ReviewAudit.tenant_id) == principal.tenant_id,
                col(ReviewAudit.review_id) == review.id,
            )
            .order_by(col(ReviewAudit.at), col(ReviewAudit.id))
        )
        rows = (await db.exec(stmt)).all()
    return [
        {
            "action": a.action,
            "actor": a.actor,
            "at": iso(a.at),
            "comment": a.comment,
            "details": a.details,
        }
        for a in rows
    ]


def reviewer_of(principal: Principal, given: str | None) -> str:
    """Who decided: the body's reviewer name, else the principal's user, else its API key."""
    return given or principal.user_id or f"key:{principal.key_id}"


@dataclass(frozen=True)
class Decided:
    """A recorded decision; `resume` names the run to hand to an executor now (or None)."""

    review: Json
    resume: str | None


async def decide(principal: Principal, review_id: str, body: ReviewDecision) -> Decided:
    """Decide a pending review once (409 after); the run resumes when nothing else is pending."""
    status = "approved" if body.decision == "approve" else "rejected"
    actor = reviewer_of(principal, body.reviewer)
    async with db_session() as db:
        review = await _review(db, principal, review_id)
        now = utcnow()
        always = body.always_approve_tool_for_thread and review.kind == "tool"
        won: Any = await db.exec(
            update(Review)
            .where(
                col(Review.id) == review.id,
                col(Review.tenant_id) == principal.tenant_id,
                col(Review.status) == "pending",
            )
            .values(
                status=status,
                decided_at=now,
                decided_by=actor,
                comment=body.comment,
                always_approve=always,
            )
        )
        if int(won.rowcount) != 1:
            await db.rollback()
            # The rollback expired `review`; read what the winning decision left (no lazy load).
            current = await db.exec(select(Review.status).where(col(Review.id) == review_id))
            raise Conflict(
                f"The review was already decided ({current.first() or 'decided'}).",
                review_id=review_id,
            )
        review.status, review.decided_at, review.decided_by = status, now, actor
        review.comment, review.always_approve = body.comment, always
        details = {"always_approve_tool_for_thread": always}
        db.add(ReviewAudit(**_audit(review, status, actor, body.comment, **details)))
        await publish_review_event(db, outbox.REVIEW_DECIDED, review)
        if always and status == "approved" and review.thread_id and review.tool:
            found = await db.get(
                ThreadToolApproval, (principal.tenant_id, review.thread_id, review.tool)
            )
            if found is None:
                db.add(
                    ThreadToolApproval(
                        tenant_id=principal.tenant_id,
                        thread_id=review.thread_id,
                        tool=review.tool,
                        review_id=review.id,
                    )
                )
        try:
            await db.commit()
        except IntegrityError:
            # Two reviews of one thread chose "always approve" at once: the other row stands.
            raise Conflict("The review changed concurrently; read it again.") from None
    observability.review_decided((now - as_utc(review.requested_at)).total_seconds(), status)
    resumed = await direct.write(
        lambda tx: resume_when_decided(tx, review.tenant_id, review.run_id)
    )
    return Decided(review_json(review), review.run_id if resumed else None)


def resume_when_decided(tx: Tx, tenant_id: str, run_id: str) -> bool:
    """Set an interrupted run pending again once none of its reviews is pending (a unit).

    True when this call did (exactly one racing decider does): the caller enqueues the run.
    """
    pending = tx.conn.execute(
        sa.select(REVIEWS.c.id).where(
            REVIEWS.c.tenant_id == tenant_id,
            REVIEWS.c.run_id == run_id,
            REVIEWS.c.status == "pending",
        )
    ).first()
    if pending is not None:
        return False
    if tx.conn.execute(sa.select(PAUSES.c.run_id).where(PAUSES.c.run_id == run_id)).first() is None:
        return False
    # history_start is re-recorded when the resumed run starts: a takeover after a crash trims
    # the conversation back to the pause, which the stored RunState continues from.
    resumed = tx.conn.execute(
        update(RUNS)
        .where(
            RUNS.c.id == run_id,
            RUNS.c.tenant_id == tenant_id,
            RUNS.c.status == "interrupted",
            RUNS.c.error.is_(None),
        )
        .values(
            status="pending",
            finished_at=None,
            history_start=None,
            updated_at=utcnow(),
            # Re-driven by the sweep if no executor receives it within a lease (a lost send).
            lease_owner=None,
            lease_expires_at=dispatch_deadline(utcnow()),
        )
    ).rowcount
    if resumed != 1:
        return False
    thread_id = tx.conn.execute(sa.select(RUNS.c.thread_id).where(RUNS.c.id == run_id)).scalar()
    if thread_id is not None:
        tx.conn.execute(
            update(THREADS)
            .where(
                THREADS.c.id == thread_id,
                THREADS.c.tenant_id == tenant_id,
                THREADS.c.active_run_id == run_id,
            )
            .values(status="busy", updated_at=utcnow())
        )
    get_notifier().notify_in_tx(tx, run_topic(run_id), "resumed")
    return True


# --- Agent Protocol: command.resume ---------------------------------------------------------


async def resume_with_command(
    principal: Principal, command: Json, thread_id: str | None
) -> tuple[str, list[str]]:
    """Decide the thread's interrupted run from a LangGraph `command: {"resume": ...}`.

    Returns the run id and the runs to hand to an executor now.
    """
    if set(command) - {"resume"} or "resume" not in command:
        raise ValidationFailed('Only `command: {"resume": ...}` is supported.')
    if thread_id is None:
        raise ValidationFailed("Resuming needs a thread: use /threads/{thread_id}/runs.")
    async with db_session() as db:
        thread = await find_thread(db, principal, thread_id)
        if thread is None:
            raise NotFound(f"No thread {thread_id!r}.")
        if thread.status != "interrupted" or thread.active_run_id is None:
            raise Conflict("The thread has no interrupted run to resume.", thread_id=thread_id)
        run_id = thread.active_run_id
        stmt = select(Review).where(
            col(Review.tenant_id) == principal.tenant_id,
            col(Review.run_id) == run_id,
            col(Review.status) == "pending",
        )
        pending = list((await db.exec(stmt)).all())
    decisions = _decisions(command["resume"], [r.id for r in pending])
    resume: list[str] = []
    for review_id, decision in decisions.items():
        decided = await decide(principal, review_id, decision)
        if decided.resume is not None:
            resume.append(decided.resume)
    return run_id, resume


def _decision(value: Any) -> ReviewDecision:
    if isinstance(value, str | bool):
        value = {"decision": "approve" if value in (True, "approve", "approved") else value}
        if value["decision"] in (False, "rejected"):
            value["decision"] = "reject"
    if not isinstance(value, dict):
        raise ValidationFailed('A resume value is "approve", "reject" or {"decision": ...}.')
    if "type" in value and "decision" not in value:  # {"type": "accept"|"reject"} (agent inbox)
        value = {
            **value,
            "decision": "approve" if value["type"] in ("accept", "approve") else "reject",
        }
        value.pop("type")
    try:
        return ReviewDecision.model_validate({k: v for k, v in value.items() if k != "args"})
    except ValueError:
        raise ValidationFailed(
            'A resume value is "approve", "reject" or {"decision": ...}.'
        ) from None


def _decisions(resume: Any, pending: list[str]) -> dict[str, ReviewDecision]:
    if not pending:
        raise Conflict("The interrupted run has no pending review.")
    if isinstance(resume, dict) and resume and set(resume) <= set(pending):
        return {review_id: _decision(value) for review_id, value in resume.items()}
    if (
        isinstance(resume, dict)
        and set(resume) & {"decision", "type"}
        or isinstance(resume, str | bool)
    ):
        one = _decision(resume)
        return dict.fromkeys(pending, one)
    raise ValidationFailed("The resume value names no pending interrupt of this thread.")


# --- ending a paused run: expiry and cancel -----------------------------------------------------


async def expire_due_reviews(now: Any = None) -> int:
    """Expire pending reviews past `expires_at` and end their runs (`error`, "review expired").

    Idempotent and safe to run on several instances: each review and each run moves by
    compare-and-set, so a review is expired once and a run is ended once. Returns how many
    reviews this call expired.
    """
    moment = now or utcnow()
    async with db_session() as db:
        stmt = select(Review).where(
            col(Review.status) == "pending", col(Review.expires_at) <= moment
        )
        due = list((await db.exec(stmt)).all())
    expired = 0
    runs: set[tuple[str, str]] = set()
    for review in due:
        async with db_session() as db:
            won: Any = await db.exec(
                update(Review)
                .where(col(Review.id) == review.id, col(Review.status) == "pending")
                .values(status="expired", decided_at=moment, decided_by="system")
            )
            if int(won.rowcount) != 1:
                continue
            review.status = "expired"
            details = {"expires_at": iso(review.expires_at)}
            db.add(ReviewAudit(**_audit(review, "expired", "system", **details)))
            await publish_review_event(db, outbox.REVIEW_DECIDED, review)
            await db.commit()
        expired += 1
        runs.add((review.tenant_id, review.run_id))
    for tenant_id, run_id in runs:
        await end_paused_run(
            tenant_id,
            run_id,
            status="error",
            error=EXPIRED_ERROR,
            review_status="expired",
            note="The request expired before a reviewer decided; it was not carried out.",
        )
    return expired


async def cancel_paused_run(tenant_id: str, run_id: str) -> bool:
    """End a run that waits for review because it was cancelled: status `interrupted`, error
    `cancelled` (the API's cancel_reason), its thread released, its pending reviews `cancelled`
    (a later decision is 409). False when the run is not paused (nothing changed)."""
    return await end_paused_run(
        tenant_id,
        run_id,
        status="interrupted",
        error=records.CANCELLED,
        review_status="cancelled",
        note="The request was cancelled before a reviewer decided; it was not carried out.",
    )


async def end_paused_run(
    tenant_id: str, run_id: str, *, status: str, error: str, review_status: str, note: str
) -> bool:
    """End a paused run, closing its pending reviews and the paused turn in its history."""
    sql_history = get_settings().session_backend == "sql"

    def unit(tx: Tx) -> tuple[Run, list[Any]] | None:
        run = records.load_run(tx, run_id, tenant_id=tenant_id)
        pause = tx.conn.execute(sa.select(PAUSES).where(PAUSES.c.run_id == run_id)).mappings()
        row = pause.first()
        if run is None or run.status != "interrupted" or run.error is not None or row is None:
            # Not waiting for review: a cancelled run is `interrupted` too, with an error.
            return None
        reviews = [
            Review.model_validate(dict(r))
            for r in tx.conn.execute(
                sa.select(REVIEWS).where(REVIEWS.c.run_id == run_id)
            ).mappings()
        ]
        closing = [r for r in reviews if r.status == "pending"]
        tx.conn.execute(
            update(REVIEWS)
            .where(REVIEWS.c.run_id == run_id, REVIEWS.c.status == "pending")
            .values(status=review_status, decided_at=utcnow(), decided_by="system")
        )
        if review_status != "expired":
            # Expiry audits each review it expires itself; a cancel audits those it closes.
            for review in closing:
                tx.conn.execute(insert(AUDIT), _audit(review, review_status, "system"))
        # Close the paused turn in the conversation so the thread stays valid for its next run.
        items: list[Any] = [
            {"type": "function_call_output", "call_id": r.call_id, "output": note}
            for r in reviews
            if r.kind == "tool" and r.call_id
        ]
        if row["kind"] == "output":
            items.append({"role": "assistant", "content": note})
        history = None
        if items and sql_history and run.thread_id is not None:
            history = (session_key(tenant_id, run.thread_id), items)
        try:
            records.end_run(
                tx,
                run,
                from_status="interrupted",
                status=status,
                error=error,
                ending=Ending(history=history),
            )
        except NotOurs:
            return None
        tx.conn.execute(delete(PAUSES).where(PAUSES.c.run_id == run_id))
        return run, ([] if history is not None else items)

    done = await direct.write(unit)
    if done is None:
        return False
    run, later = done
    if later and run.thread_id is not None:
        await build_session(tenant_id, run.thread_id).add_items(later)
    return True
