"""Human-in-the-loop reviews: pause a run for a human, decide, resume on any instance, expire.

Pausing. A run pauses in two ways (both from `shared.runs.execute_run`):

- tool approval: a write/spend tool's `needs_approval` (shared/agents/approval.py) stops the
  run with `interruptions`; the SDK's `RunState` JSON is stored in `run_pauses` and one review
  (kind `tool`) is created per interruption, holding the tool, its arguments and the call id;
- output review: an output guardrail whose tripwire carries `output_info["review"]` (billing's
  `refund_review`) holds the final answer back; it is stored in `run_pauses`, not in the
  conversation, and one review (kind `output`) holds it.

The run becomes `interrupted` (error NULL), its thread `interrupted` (still held by the run, so
no other run starts on it), and a `values` event carrying `__interrupt__` (LangGraph's shape;
each interrupt's id is its review id) plus an `end` event are written.

Deciding. `decide()` is a compare-and-set `pending -> approved|rejected`: a second decision, or
the loser of two racing reviewers, gets 409 and changes nothing. Every request, decision and
expiry is written to `review_audit` (who, when, what, comment). When no review of the run is
pending any more, the run is set back to `pending` (its thread `busy`, still held) and handed
to `shared.dispatch.enqueue_run`; the executor rebuilds the `RunState` from JSON, applies the
decisions (`approve`, or `reject` with a message the agent reads) and continues streaming: tool
calls made before the pause are not repeated, an approved call runs exactly once. An approved
output review releases the held answer (run `success` with it); a rejected one replaces it with
`OUTPUT_REFUSAL`.

Expiry. `expire_due_reviews()` (the `expire_reviews` ACA job, every 5 minutes) marks pending
reviews past `expires_at` (ASCENT_REVIEW_TTL_SECONDS after the request) `expired` and ends
their run with status `error` and error `"review expired"`; the pending tool never runs, and a
late decision gets 409. The conversation gets a tool output / assistant note saying so, so the
thread stays valid for the next run.

Agent Protocol. `POST /threads/{thread_id}/runs[/wait]` with `command: {"resume": ...}` decides
the thread's interrupted run: `{"resume": {"decision": "approve"}}` (or `"approve"`/`"reject"`)
decides every pending review; `{"resume": {"<interrupt id>": {"decision": ...}}}` one each.

Every query filters on the tenant; another tenant's review id is 404. Within a tenant a review
follows its thread (shared/thread_access.py): a user lists, reads and decides only the reviews
of threads they own or were granted; tenant-wide principals see all of them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

from agents import Agent, RunContextWrapper, RunResultStreaming, RunState
from agents.memory import Session
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.agents.approval import RunContext
from shared.auth import Principal
from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import Run, Thread, utcnow
from shared.db.review_models import Review, ReviewAudit, RunPause, ThreadToolApproval
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.run_events import EventWriter, to_messages
from shared.settings import get_settings
from shared.thread_access import find_thread, review_visible

log = logging.getLogger(__name__)

Json = dict[str, Any]
EXPIRED_ERROR = "review expired"
OUTPUT_REFUSAL = (
    "I'm sorry, I can't confirm that. A reviewer did not approve this answer; "
    "a member of our team will follow up."
)
CONTEXT_MESSAGES = 20


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
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0)


def _iso(moment: Any) -> str | None:
    from shared.runs import aware

    return aware(moment).isoformat() if moment is not None else None


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
        "requested_at": _iso(review.requested_at),
        "expires_at": _iso(review.expires_at),
        "decided_at": _iso(review.decided_at),
        "decided_by": review.decided_by,
        "comment": review.comment,
        "always_approve_tool_for_thread": review.always_approve,
    }


def interrupt_json(review: Review) -> Json:
    """A review as a LangGraph interrupt (`{"id", "value"}`) in `__interrupt__`."""
    return {"id": review.id, "value": {k: v for k, v in review_json(review).items() if v}}


# --- events (the outbox's call site) --------------------------------------------------------


async def publish_review_event(db: AsyncSession, event_type: str, review: Review) -> None:
    """Record `review.required` / `review.decided` in the outbox, in the caller's transaction.

    The subject is the review (its events are ordered: required, then decided); the data names
    the run, thread, agent, tool and status, never the tool's arguments or the held answer.
    """
    from shared.events import record_event

    data = {
        "review_id": review.id,
        "run_id": review.run_id,
        "thread_id": review.thread_id,
        "agent_id": review.agent,
        "kind": review.kind,
        "tool": review.tool,
        "status": review.status,
        "decided_by": review.decided_by,
        "expires_at": _iso(review.expires_at),
    }
    await record_event(
        session=db, tenant_id=review.tenant_id, type=event_type, subject=review.id, data=data
    )


def _audit(
    review: Review, action: str, actor: str, comment: str | None = None, **details: Any
) -> ReviewAudit:
    return ReviewAudit(
        tenant_id=review.tenant_id,
        review_id=review.id,
        action=action,
        actor=actor,
        comment=comment,
        details=details or None,
    )


# --- pausing (called by the executor) -------------------------------------------------------


async def pause_for_tools(
    run: Run, writer: EventWriter, result: RunResultStreaming, *, usage: dict[str, int]
) -> None:
    """Persist a run stopped on tool approvals: its RunState, one review per interruption."""
    state = result.to_state().to_json()
    agent = result.last_agent.name
    reviews = []
    for item in result.interruptions:
        raw: Any = item.raw_item
        arguments = getattr(raw, "arguments", None)
        if arguments is None and isinstance(raw, dict):
            arguments = raw.get("arguments")
        review = _new_review(
            run,
            agent,
            kind="tool",
            tool=item.tool_name,
            call_id=_call_id(raw),
            arguments=_parse_args(arguments),
        )
        reviews.append(review)
    pause = RunPause(run_id=run.id, tenant_id=run.tenant_id, kind="tool", agent=agent, state=state)
    await _pause(run, writer, pause, reviews, usage=usage, last_agent=agent)


async def pause_for_output(
    run: Run, writer: EventWriter, *, agent: str, output: str, reason: str, usage: dict[str, int]
) -> None:
    """Persist a run whose final answer an output guardrail sent to review."""
    review = _new_review(run, agent, kind="output", output=output, reason=reason)
    pause = RunPause(
        run_id=run.id, tenant_id=run.tenant_id, kind="output", agent=agent, output=output
    )
    await _pause(run, writer, pause, [review], usage=usage, last_agent=agent)


def _parse_args(arguments: Any) -> Json | None:
    import json

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
        tenant_id=run.tenant_id,
        run_id=run.id,
        thread_id=run.thread_id,
        agent=agent,
        kind=kind,
        requested_at=now,
        expires_at=now + timedelta(seconds=get_settings().review_ttl_seconds),
        **fields,
    )


async def _pause(
    run: Run,
    writer: EventWriter,
    pause: RunPause,
    reviews: list[Review],
    *,
    usage: dict[str, int],
    last_agent: str,
) -> None:
    from shared.ratelimit import record_tokens
    from shared.runs import conversation_session

    assert run.thread_id is not None
    items = await conversation_session(run.tenant_id, run.thread_id).get_items()
    messages = to_messages(items)
    rows = await writer.take_pending()
    rows += [
        writer.stage(
            "values", {"messages": messages, "__interrupt__": [interrupt_json(r) for r in reviews]}
        ),
        writer.stage("end", {"run_id": run.id, "status": "interrupted"}),
    ]
    async with db_session() as db:
        existing = await db.get(RunPause, run.id)
        if existing is not None:
            await db.delete(existing)
            await db.flush()
        db.add(pause)
        for review in reviews:
            db.add(review)
        await db.flush()
        for review in reviews:
            db.add(_audit(review, "requested", "system", **_request_details(review)))
            await publish_review_event(db, "review.required", review)
        await repo.append_run_events(
            session=db, tenant_id=run.tenant_id, run_id=run.id, events=rows
        )
        values: dict[str, Any] = {
            "status": "interrupted",
            "error": None,
            "last_agent": last_agent,
            "history_len": len(items),
            "lease_expires_at": None,
            **usage,
        }
        paused = await repo.transition_run(
            session=db,
            run_id=run.id,
            from_status="running",
            lease_owner=run.lease_owner,
            **values,
        )
        if not paused:
            # Another worker took the run over (this one's lease lapsed): its outcome stands.
            await db.rollback()
            log.warning("run %s: pause not recorded, the run is no longer ours", run.id)
            return
        await db.exec(
            update(Thread)
            .where(
                col(Thread.id) == run.thread_id,
                col(Thread.tenant_id) == run.tenant_id,
                col(Thread.active_run_id) == run.id,
            )
            .values(status="interrupted", updated_at=utcnow())
        )
        await db.commit()
    await record_tokens(run.tenant_id, usage.get("total_tokens", 0))


def _request_details(review: Review) -> Json:
    if review.kind == "tool":
        return {"tool": review.tool, "arguments": review.arguments}
    return {"reason": review.reason}


# --- resuming (called by the executor) ------------------------------------------------------


def holds_for_review(output_info: Any) -> bool:
    """Whether an output guardrail's tripwire means "hold for review" rather than "refuse"."""
    return isinstance(output_info, dict) and output_info.get("review") is True


async def load_pause(run: Run) -> RunPause | None:
    """The pause a resumed run continues from (None for a run that never paused)."""
    async with db_session() as db:
        pause = await db.get(RunPause, run.id)
    return pause if pause is not None and pause.tenant_id == run.tenant_id else None


async def _decided(run: Run) -> dict[str | None, Review]:
    async with db_session() as db:
        stmt = select(Review).where(Review.tenant_id == run.tenant_id, Review.run_id == run.id)
        return {r.call_id: r for r in (await db.exec(stmt)).all() if r.status != "pending"}


async def release_answer(run: Run, pause: RunPause, session: Session) -> str:
    """Finish an output review: the held answer if approved, else `OUTPUT_REFUSAL`; the chosen
    text is appended to the conversation (the held answer was never saved there)."""
    review = next(iter((await _decided(run)).values()), None)
    approved = review is not None and review.status == "approved"
    answer = (pause.output or "") if approved else OUTPUT_REFUSAL
    await session.add_items([{"role": "assistant", "content": answer}])
    return answer


async def resumed_state(
    run: Run, pause: RunPause, agent: Agent[Any], context: RunContext
) -> RunState[Any, Agent[Any]]:
    """The paused RunState, rebuilt from JSON with each interruption approved or rejected."""
    decided = await _decided(run)
    state = await RunState.from_json(
        agent, dict(pause.state or {}), context_override=RunContextWrapper(context=context)
    )
    for item in state.get_interruptions():
        review = decided.get(_call_id(item.raw_item))
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
    """A review on a thread the principal sees (shared/thread_access.py), else NotFound."""
    stmt = select(Review).where(col(Review.id) == review_id, review_visible(principal))
    review = (await db.exec(stmt)).first()
    if review is None:
        raise NotFound(f"No review {review_id!r}.")
    return review


async def list_reviews(principal: Principal, query: ReviewQuery) -> list[Json]:
    """The reviews in a status (default pending) on threads the principal sees, oldest first."""
    now = utcnow()
    stmt = select(Review).where(review_visible(principal), Review.status == query.status)
    if query.agent is not None:
        stmt = stmt.where(Review.agent == query.agent)
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
    from shared.runs import conversation_session

    async with db_session() as db:
        review = await _review(db, principal, review_id)
    body = review_json(review)
    messages: list[Json] = []
    if review.thread_id:
        items = await conversation_session(principal.tenant_id, review.thread_id).get_items(
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
            .where(ReviewAudit.tenant_id == principal.tenant_id, ReviewAudit.review_id == review.id)
            .order_by(col(ReviewAudit.at), col(ReviewAudit.id))
        )
        rows = (await db.exec(stmt)).all()
    return [
        {
            "action": a.action,
            "actor": a.actor,
            "at": _iso(a.at),
            "comment": a.comment,
            "details": a.details,
        }
        for a in rows
    ]


def reviewer_of(principal: Principal, given: str | None) -> str:
    """Who decided: the body's reviewer name, else the principal's user, else its API key."""
    return given or principal.user_id or f"key:{principal.key_id}"


async def decide(principal: Principal, review_id: str, body: ReviewDecision) -> Json:
    """Decide a pending review once (409 after); resume its run when nothing else is pending."""
    status = "approved" if body.decision == "approve" else "rejected"
    actor = reviewer_of(principal, body.reviewer)
    async with db_session() as db:
        review = await _review(db, principal, review_id)
        now = utcnow()
        always = body.always_approve_tool_for_thread and review.kind == "tool"
        won = await db.exec(
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
        if repo._rowcount(won) != 1:
            await db.rollback()
            # The rollback expired `review`; read what the winning decision left (no lazy load).
            current = await db.exec(select(Review.status).where(Review.id == review_id))
            raise Conflict(
                f"The review was already decided ({current.first() or 'decided'}).",
                review_id=review_id,
            )
        review.status, review.decided_at, review.decided_by = status, now, actor
        review.comment, review.always_approve = body.comment, always
        db.add(_audit(review, status, actor, body.comment, always_approve_tool_for_thread=always))
        await publish_review_event(db, "review.decided", review)
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
    await resume_when_decided(principal.tenant_id, review.run_id)
    return review_json(review)


async def resume_when_decided(tenant_id: str, run_id: str) -> bool:
    """Set an interrupted run pending again once none of its reviews is pending; enqueue it."""
    from shared.dispatch import enqueue_run

    async with db_session() as db:
        stmt = select(Review.id).where(
            Review.tenant_id == tenant_id, Review.run_id == run_id, Review.status == "pending"
        )
        if (await db.exec(stmt)).first() is not None:
            return False
        run = await repo.get_run(session=db, tenant_id=tenant_id, run_id=run_id)
        if run is None or await db.get(RunPause, run_id) is None:
            return False
        # history_start is re-recorded when the resumed run starts: a takeover after a crash
        # trims the conversation back to the pause, which the stored RunState continues from.
        if not await repo.transition_run(
            session=db,
            run_id=run_id,
            from_status="interrupted",
            status="pending",
            finished_at=None,
            history_start=None,
        ):
            return False
        if run.thread_id is not None:
            await db.exec(
                update(Thread)
                .where(
                    col(Thread.id) == run.thread_id,
                    col(Thread.tenant_id) == tenant_id,
                    col(Thread.active_run_id) == run_id,
                )
                .values(status="busy", updated_at=utcnow())
            )
        await db.commit()
    await enqueue_run(run_id)
    return True


# --- Agent Protocol: command.resume ---------------------------------------------------------


async def resume_with_command(principal: Principal, command: Json, thread_id: str | None) -> Run:
    """Decide the thread's interrupted run from a LangGraph `command: {"resume": ...}`."""
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
            Review.tenant_id == principal.tenant_id,
            Review.run_id == run_id,
            Review.status == "pending",
        )
        pending = list((await db.exec(stmt)).all())
    decisions = _decisions(command["resume"], [r.id for r in pending])
    for review_id, decision in decisions.items():
        await decide(principal, review_id, decision)
    async with db_session() as db:
        run = await repo.get_run(session=db, tenant_id=principal.tenant_id, run_id=run_id)
    if run is None:
        raise NotFound(f"No run {run_id!r}.")
    return run


async def resume_stream_start(principal: Principal, thread_id: str | None) -> int:
    """The last event seq of the thread's interrupted run: a streamed `command` resume sends the
    resumed part only, not the paused part again (whose `end` would close the stream)."""
    if thread_id is None:
        return 0
    async with db_session() as db:
        thread = await find_thread(db, principal, thread_id)
        if thread is None or thread.active_run_id is None:
            return 0
        return await repo.last_run_event_seq(session=db, run_id=thread.active_run_id)


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


# --- expiry (the expire_reviews job) --------------------------------------------------------


async def expire_due_reviews(now: Any = None) -> int:
    """Expire pending reviews past `expires_at` and end their runs (`error`, "review expired").

    Idempotent and safe to run on several instances: each review and each run moves by
    compare-and-set, so a review is expired once and a run is ended once. Returns how many
    reviews this call expired.
    """
    from shared.runs import conversation_session

    moment = now or utcnow()
    async with db_session() as db:
        stmt = select(Review).where(Review.status == "pending", col(Review.expires_at) <= moment)
        due = list((await db.exec(stmt)).all())
    expired = 0
    runs: set[tuple[str, str]] = set()
    for review in due:
        async with db_session() as db:
            won = await db.exec(
                update(Review)
                .where(col(Review.id) == review.id, col(Review.status) == "pending")
                .values(status="expired", decided_at=moment, decided_by="system")
            )
            if repo._rowcount(won) != 1:
                continue
            review.status = "expired"
            db.add(_audit(review, "expired", "system", expires_at=_iso(review.expires_at)))
            await publish_review_event(db, "review.decided", review)
            await db.commit()
        expired += 1
        runs.add((review.tenant_id, review.run_id))
    for tenant_id, run_id in runs:
        await _end_expired_run(tenant_id, run_id, conversation_session)
    return expired


async def _end_expired_run(tenant_id: str, run_id: str, sessions: Any) -> None:
    await _end_paused_run(
        tenant_id,
        run_id,
        sessions,
        status="error",
        error=EXPIRED_ERROR,
        review_status="expired",
        note="The request expired before a reviewer decided; it was not carried out.",
    )


async def cancel_paused_run(tenant_id: str, run_id: str) -> bool:
    """End a run that waits for review because it was cancelled: status `interrupted`, error
    `cancelled` (the API's cancel_reason), its thread released, its pending reviews `cancelled`
    (a later decision is 409). False when the run is not paused (nothing changed)."""
    from shared.runs import conversation_session

    return await _end_paused_run(
        tenant_id,
        run_id,
        conversation_session,
        status="interrupted",
        error="cancelled",
        review_status="cancelled",
        note="The request was cancelled before a reviewer decided; it was not carried out.",
    )


async def _end_paused_run(
    tenant_id: str,
    run_id: str,
    sessions: Any,
    *,
    status: str,
    error: str,
    review_status: str,
    note: str,
) -> bool:
    async with db_session() as db:
        run = await repo.get_run(session=db, tenant_id=tenant_id, run_id=run_id)
        pause = await db.get(RunPause, run_id)
        if run is None or run.status != "interrupted" or run.error is not None or pause is None:
            # Not waiting for review: a cancelled run is `interrupted` too, with an error (and
            # a run that paused and resumed keeps its pause row).
            return False
        stmt = select(Review).where(Review.tenant_id == tenant_id, Review.run_id == run_id)
        reviews = list((await db.exec(stmt)).all())
        seq = await repo.last_run_event_seq(session=db, run_id=run_id)
        if not await repo.transition_run(
            session=db,
            run_id=run_id,
            from_status="interrupted",
            status=status,
            error=error,
            finished_at=utcnow(),
        ):
            return False
        # Reviews of the run still pending (another one expired first) close with it.
        closing = list(
            (
                await db.exec(
                    select(Review).where(
                        col(Review.run_id) == run_id, col(Review.status) == "pending"
                    )
                )
            ).all()
        )
        await db.exec(
            update(Review)
            .where(col(Review.run_id) == run_id, col(Review.status) == "pending")
            .values(status=review_status, decided_at=utcnow(), decided_by="system")
        )
        if review_status != "expired":
            # Expiry audits each review it expires itself; a cancel audits the ones it closes.
            for review in closing:
                db.add(_audit(review, review_status, "system"))
        writer = EventWriter(tenant_id=tenant_id, run_id=run_id, next_seq=seq + 1)
        rows = []
        if status == "error":
            rows.append(writer.stage("error", {"error": "RunError", "message": error}))
        rows.append(writer.stage("end", {"run_id": run_id, "status": status}))
        await repo.append_run_events(session=db, tenant_id=tenant_id, run_id=run_id, events=rows)
        if run.thread_id is not None:
            await repo.release_thread(
                session=db,
                tenant_id=tenant_id,
                thread_id=run.thread_id,
                run_id=run_id,
                status="error" if status == "error" else "idle",
            )
        await db.delete(pause)
        await db.commit()
    if run.thread_id is None:
        return True
    # Close the paused turn in the conversation so the thread stays valid for its next run.
    items: list[Any] = [
        {"type": "function_call_output", "call_id": r.call_id, "output": note}
        for r in reviews
        if r.kind == "tool" and r.call_id
    ]
    if pause.kind == "output":
        items.append({"role": "assistant", "content": note})
    if items:
        await sessions(tenant_id, run.thread_id).add_items(items)
    return True
