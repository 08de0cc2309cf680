"""The run record: every state change of a run's lifecycle, as SQL units of one transaction.

Each function here is a unit for shared/db/direct.py: it takes the transaction (`tx`), runs
Core statements, announces what changed through shared/platform/notify.py, and raises to undo
itself. Together they are the only writers of a run's `status`, lease and thread claim:

    create_run ──► pending ──start_run──► running ──end_run──► success | error | timeout
        │  (or straight to running,          │                    | interrupted
        │   leased, when it runs here)       └──pause (reviews)──► interrupted (paused)
        └────────────── end_run (cancelled before it started) ──►  interrupted

Claims are compare-and-set UPDATEs (no locks, portable to SQLite, Postgres, CockroachDB):

- a thread is held by one run at a time (`threads.active_run_id`); pending runs of a thread
  take it in creation order (FIFO);
- a running run is leased to one executor (`lease_owner`, `lease_expires_at`); only the lease
  holder may write its outcome, so a run has exactly one, whatever redelivery or takeover does.

Every transition also writes its run events (the replay log) and its outbox CloudEvent
(`run.created`, `run.started`, then one terminal event with the run's webhook, if any).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from shared.core.errors import Conflict, NotFound
from shared.core.settings import get_settings
from shared.db.direct import Tx
from shared.db.models import Run, RunEvent, Thread, ThreadCheckpoint, ThreadGrant, new_id, utcnow
from shared.db.types import as_utc
from shared.memory.sessions import clear_history, session_key, stage_history
from shared.outbox import events as outbox
from shared.outbox.webhooks import stage_run_end
from shared.platform.notify import get_notifier

Json = dict[str, Any]
EventRow = tuple[int, str, Any]

RUNS: Final[Table] = Run.__table__  # type: ignore[attr-defined]
THREADS: Final[Table] = Thread.__table__  # type: ignore[attr-defined]
EVENTS: Final[Table] = RunEvent.__table__  # type: ignore[attr-defined]
GRANTS: Final[Table] = ThreadGrant.__table__  # type: ignore[attr-defined]
CHECKPOINTS: Final[Table] = ThreadCheckpoint.__table__  # type: ignore[attr-defined]

TERMINAL: Final = frozenset({"success", "error", "timeout", "interrupted"})
# Why a run ended without an answer, as recorded in `runs.error` (never internals).
CANCELLED: Final = "cancelled"
EXECUTOR_LOST: Final = "the instance executing the run stopped before it ended"
# The lease of a queue delivery whose execution raised: the queue redelivers its message (or
# dead-letters it), so the sweeper leaves the run alone; without this, every sweep between
# two deliveries sent one more message and a poison run ran more times than maxDequeueCount.
REDELIVERING: Final = "redeliver:"


# Statements built once: building one per call costs ~100 µs, executing a prebuilt one ~20 µs
# (measured on SQLite), and a run's lifecycle executes about a dozen.
def _B(name: str) -> Any:
    """A named parameter (prefixed: UPDATE reserves the names of the columns it sets)."""
    return bindparam(f"p_{name}")


def _p(**values: Any) -> dict[str, Any]:
    """Parameters for statements built with `_B`."""
    return {f"p_{name}": value for name, value in values.items()}


_LOAD_RUN = select(RUNS).where(RUNS.c.id == _B("run_id"))
_LOAD_TENANT_RUN = _LOAD_RUN.where(RUNS.c.tenant_id == _B("tenant_id"))
_LAST_SEQ = select(func.max(EVENTS.c.seq)).where(EVENTS.c.run_id == _B("run_id"))
_INSERT_EVENTS = insert(EVENTS)
_INSERT_RUN = insert(RUNS)
_INSERT_THREAD = insert(THREADS)
# Thread ids are unique per tenant (migration 0015): every thread lookup names the tenant.
_FIND_THREAD = select(THREADS.c.id, THREADS.c.tenant_id).where(
    THREADS.c.id == _B("thread_id"), THREADS.c.tenant_id == _B("tenant_id")
)
_THREAD_STATE = select(THREADS.c.status, THREADS.c.active_run_id).where(
    THREADS.c.id == _B("thread_id"), THREADS.c.tenant_id == _B("tenant_id")
)


def _claim_statement(*, fifo: bool) -> Any:
    """Compare-and-set a free thread to busy for a run, unless an earlier pending run waits."""
    earlier = and_(
        RUNS.c.thread_id == _B("thread_id"),
        RUNS.c.tenant_id == _B("tenant_id"),
        RUNS.c.status == "pending",
        RUNS.c.id != _B("run_id"),
    )
    if fifo:
        earlier = and_(
            earlier,
            or_(
                RUNS.c.created_at < _B("queued_at"),
                and_(RUNS.c.created_at == _B("queued_at"), RUNS.c.id < _B("run_id")),
            ),
        )
    return (
        update(THREADS)
        .where(
            THREADS.c.id == _B("thread_id"),
            THREADS.c.tenant_id == _B("tenant_id"),
            # An interrupted thread stays held by its paused run until a review resumes it.
            THREADS.c.status.not_in(("busy", "interrupted")),
            ~exists(select(RUNS.c.id).where(earlier)),
        )
        .values(status="busy", active_run_id=_B("run_id"), updated_at=_B("now"))
    )


_CLAIM_ANY = _claim_statement(fifo=False)
_CLAIM_FIFO = _claim_statement(fifo=True)
_RELEASE_THREAD = (
    update(THREADS)
    .where(
        THREADS.c.id == _B("thread_id"),
        THREADS.c.tenant_id == _B("tenant_id"),
        THREADS.c.active_run_id == _B("run_id"),
    )
    .values(status=_B("status"), active_run_id=None, updated_at=_B("now"))
)
_START_RUN = (
    update(RUNS)
    .where(RUNS.c.id == _B("run_id"), RUNS.c.status == "pending")
    .values(
        status="running",
        started_at=_B("now"),
        updated_at=_B("now"),
        lease_owner=_B("owner"),
        lease_expires_at=_B("until"),
    )
)
_TAKE_OVER_ANY = (
    update(RUNS)
    .where(
        RUNS.c.id == _B("run_id"),
        RUNS.c.status == "running",
        RUNS.c.lease_expires_at.is_not(None),
        RUNS.c.lease_expires_at < _B("now"),
    )
    .values(lease_owner=_B("owner"), lease_expires_at=_B("until"), updated_at=_B("now"))
)
_TAKE_OVER = _TAKE_OVER_ANY.where(RUNS.c.tenant_id == _B("tenant_id"))
# A running run's lease, or a pending run's claim (a receiver waits on it): same renewal.
_RENEW_LEASE = (
    update(RUNS)
    .where(
        RUNS.c.id == _B("run_id"),
        RUNS.c.status.in_(("pending", "running")),
        RUNS.c.lease_owner == _B("owner"),
    )
    .values(lease_expires_at=_B("until"))
)
# A failed execution's lease, lapsed at once and (for a queue delivery) marked REDELIVERING.
_RELEASE_LEASE = _RENEW_LEASE.values(lease_owner=_B("marked"))
# A receiver claims a pending run unless another live receiver holds it (a duplicate message).
_CLAIM_PENDING = (
    update(RUNS)
    .where(
        RUNS.c.id == _B("run_id"),
        RUNS.c.tenant_id == _B("tenant_id"),
        RUNS.c.status == "pending",
        or_(
            RUNS.c.lease_owner.is_(None),
            RUNS.c.lease_owner == _B("owner"),
            RUNS.c.lease_expires_at.is_(None),
            RUNS.c.lease_expires_at < _B("now"),
        ),
    )
    .values(lease_owner=_B("owner"), lease_expires_at=_B("until"))
)


def _end_statement(*, held: bool, redact: bool) -> Any:
    """The outcome's compare-and-set: output and agent kept when not given, usage added."""
    where = [RUNS.c.id == _B("run_id"), RUNS.c.status == _B("from_status")]
    if held:
        where.append(RUNS.c.lease_owner == _B("held_by"))
    values: dict[str, Any] = {
        "status": _B("status"),
        "error": _B("error"),
        "finished_at": _B("now"),
        "updated_at": _B("now"),
        "lease_expires_at": None,
        "output": func.coalesce(_B("output"), RUNS.c.output),
        "last_agent": func.coalesce(_B("last_agent"), RUNS.c.last_agent),
        "history_len": func.coalesce(_B("history_len"), RUNS.c.history_len),
        # Where the run's turn starts in the thread's history (kept once known): a rollback
        # trims back to it.
        "history_start": func.coalesce(RUNS.c.history_start, _B("history_start")),
        # A resumed run's usage adds to what its paused part used.
        **{column: RUNS.c[column] + _B(column) for column in USAGE_COLUMNS},
    }
    if redact:
        values |= {"input": _B("redacted"), "input_items": None}
    return update(RUNS).where(*where).values(**values)


USAGE_COLUMNS: Final = ("requests", "input_tokens", "output_tokens", "total_tokens")
_DETACH = (
    delete(GRANTS).where(
        GRANTS.c.tenant_id == _B("tenant_id"), GRANTS.c.thread_id == _B("thread_id")
    ),
    delete(CHECKPOINTS).where(
        CHECKPOINTS.c.tenant_id == _B("tenant_id"), CHECKPOINTS.c.thread_id == _B("thread_id")
    ),
    update(RUNS)
    .where(RUNS.c.tenant_id == _B("tenant_id"), RUNS.c.thread_id == _B("thread_id"))
    .values(thread_id=None),
    delete(THREADS).where(THREADS.c.tenant_id == _B("tenant_id"), THREADS.c.id == _B("thread_id")),
)
_END = {
    (held, redact): _end_statement(held=held, redact=redact)
    for held in (False, True)
    for redact in (False, True)
}


def run_topic(run_id: str) -> str:
    """The notification topic of a run (events stored, cancel requested, ended)."""
    return f"run:{run_id}"


def thread_topic(tenant_id: str, thread_id: str) -> str:
    """The notification topic of a thread (freed for its next run); thread ids are per tenant."""
    return f"thread:{tenant_id}:{thread_id}"


def thread_runs_topic(tenant_id: str, thread_id: str) -> str:
    """The notification topic of a thread's new runs (its stream listeners wake on it)."""
    return f"thread-runs:{tenant_id}:{thread_id}"


def lease_until(now: datetime | None = None) -> datetime:
    """When a lease taken or renewed now lapses (ASCENT_RUN_LEASE_SECONDS from now)."""
    return (now or utcnow()) + timedelta(seconds=get_settings().run_lease_seconds)


def run_event_type(status: str, error: str | None) -> str:
    """The CloudEvent type of a run that ended with this status (and error)."""
    if status == "success":
        return outbox.RUN_COMPLETED
    if status == "interrupted":
        return outbox.RUN_CANCELLED if error == CANCELLED else outbox.RUN_INTERRUPTED
    return outbox.RUN_FAILED


def run_event_data(
    run_id: str, thread_id: str | None, agent: str, *, status: str, error: str | None = None
) -> Json:
    """The `data` of a `run.*` CloudEvent: ids, agent and the status the run moved to."""
    data: Json = {"run_id": run_id, "thread_id": thread_id, "agent_id": agent, "status": status}
    if error is not None:
        data["error"] = error
    return data


def load_run(tx: Tx, run_id: str, *, tenant_id: str | None = None) -> Run | None:
    """The run row (of the tenant, when given), or None."""
    if tenant_id is None:
        found = tx.conn.execute(_LOAD_RUN, _p(run_id=run_id))
    else:
        found = tx.conn.execute(_LOAD_TENANT_RUN, _p(run_id=run_id, tenant_id=tenant_id))
    row = found.mappings().first()
    return _run(row) if row is not None else None


def _run(row: Any) -> Run:
    data = dict(row)
    data["metadata_"] = data.pop("metadata", None)
    return Run(**data)


def last_seq(tx: Tx, run_id: str) -> int:
    """The highest event seq stored for a run (0 when none)."""
    return int(tx.conn.execute(_LAST_SEQ, _p(run_id=run_id)).scalar() or 0)


def append_events(tx: Tx, *, tenant_id: str, run_id: str, rows: Sequence[EventRow]) -> None:
    """Store run events (the (run_id, seq) key refuses a second writer) and announce them."""
    if not rows:
        return
    now = utcnow()
    tx.conn.execute(
        _INSERT_EVENTS,
        [
            {
                "run_id": run_id,
                "seq": seq,
                "tenant_id": tenant_id,
                "event": name,
                "data": data,
                "created_at": now,
            }
            for seq, name, data in rows
        ],
    )
    get_notifier().notify_in_tx(tx, run_topic(run_id), f"e:{rows[-1][0]}")


# --- creating ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRun:
    """A validated run to create: what every entry point hands the engine."""

    run_id: str
    tenant_id: str
    agent: str
    input_text: str
    entry_point: str
    input_items: list[Json] | None = None
    user_id: str | None = None  # who asked (a user, else an API key id): scopes memory
    thread_id: str | None = None  # an existing thread; None creates one
    thread_visible: ColumnElement[bool] | None = None  # the caller sees the thread (SQL)
    create_missing_thread: bool = False  # `if_not_exists: create` for a given thread_id
    new_thread_owner: str | None = None
    new_thread_metadata: Json | None = None
    metadata: Json = field(default_factory=dict)
    config: Json = field(default_factory=dict)
    webhook: str | None = None
    on_completion: str = "keep"
    on_disconnect: str = "cancel"
    multitask_strategy: str = "reject"
    stream_mode: list[str] | None = None
    not_before: datetime | None = None
    # Take the thread and the lease now, to execute on this instance (no queue round trip).
    lease_owner: str | None = None


@dataclass(frozen=True)
class Created:
    """What `create_run` did: the run's thread, and whether it already runs (leased)."""

    run: Run
    thread_created: bool
    started: bool


def create_run(tx: Tx, new: NewRun) -> Created:
    """Insert the run (and its thread when new); claim the thread per the multitask strategy.

    `reject` claims the thread now or raises Conflict (409); `enqueue` leaves the run pending
    behind the thread's current run. With `lease_owner` (and no `not_before`), a run whose
    thread is free starts at once, leased to that owner.
    """
    now = utcnow()
    thread_id, thread_created = _thread_for(tx, new, now)
    start_now = new.lease_owner is not None and new.not_before is None
    held = False
    if thread_created:
        held = True  # inserted already held by this run (see _thread_for)
    elif new.multitask_strategy == "reject" or start_now:
        held = _claim_thread(tx, new.tenant_id, thread_id, new.run_id, queued_at=None)
        if not held and new.multitask_strategy == "reject":
            raise Conflict(
                f"Thread {thread_id!r} is busy; retry later or use multitask_strategy 'enqueue'.",
                thread_id=thread_id,
            )
    started = start_now and held
    values: Json = {
        "id": new.run_id,
        "tenant_id": new.tenant_id,
        "thread_id": thread_id,
        "agent": new.agent,
        "status": "running" if started else "pending",
        "input": new.input_text,
        "input_items": new.input_items,
        "user_id": new.user_id,
        "metadata": new.metadata,
        "config": new.config,
        "webhook": new.webhook,
        "on_completion": new.on_completion,
        "on_disconnect": new.on_disconnect,
        "multitask_strategy": new.multitask_strategy,
        "stream_mode": new.stream_mode,
        "not_before": new.not_before,
        "entry_point": new.entry_point,
        "created_at": now,
        "updated_at": now,
        "cancel_requested": False,
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
    }
    if started:
        values |= {
            "started_at": now,
            "lease_owner": new.lease_owner,
            "lease_expires_at": lease_until(now),
        }
    elif new.lease_owner is not None:
        # A run of a request, waiting for its thread: claimed by it (renewed while it waits).
        values |= {"lease_owner": new.lease_owner, "lease_expires_at": lease_until(now)}
    else:
        values |= {"lease_expires_at": dispatch_deadline(now, new.not_before)}
    tx.conn.execute(_INSERT_RUN, values)
    append_events(
        tx,
        tenant_id=new.tenant_id,
        run_id=new.run_id,
        rows=[(1, "metadata", {"run_id": new.run_id, "thread_id": thread_id})],
    )
    data = run_event_data(new.run_id, thread_id, new.agent, status="pending")
    outbox.stage_event(
        tx.conn,
        tenant_id=new.tenant_id,
        type=outbox.RUN_CREATED,
        subject=new.run_id,
        data=data,
        seq=1,
    )
    if started:
        outbox.stage_event(
            tx.conn,
            tenant_id=new.tenant_id,
            type=outbox.RUN_STARTED,
            subject=new.run_id,
            data=data | {"status": "running"},
            seq=2,
        )
    if new.thread_id is not None:
        # A client's thread (not a stateless run's own): its stream listeners pick the run up.
        get_notifier().notify_in_tx(tx, thread_runs_topic(new.tenant_id, thread_id), new.run_id)
    run = _run({**values, "metadata": new.metadata})
    return Created(run=run, thread_created=thread_created, started=started)


def _thread_for(tx: Tx, new: NewRun, now: datetime) -> tuple[str, bool]:
    """The run's thread id, and whether this unit created it (inserted already held)."""
    if new.thread_id is None:
        thread_id = _insert_thread(tx, new, now, thread_id=None)
        return thread_id, True
    if _existing_thread(tx, new):
        return new.thread_id, False
    if not new.create_missing_thread:
        raise NotFound(f"No thread {new.thread_id!r}.")
    try:
        with tx.conn.begin_nested():
            return _insert_thread(tx, new, now, thread_id=new.thread_id), True
    except IntegrityError:
        # Created meanwhile by a concurrent first request (another instance): use that one.
        if _existing_thread(tx, new):
            return new.thread_id, False
        raise NotFound(f"No thread {new.thread_id!r}.") from None


def _existing_thread(tx: Tx, new: NewRun) -> bool:
    """Whether the given thread exists and the caller sees it (NotFound when it is another
    tenant's or user's: such ids answer exactly like missing ones)."""
    assert new.thread_id is not None
    found = tx.conn.execute(
        _FIND_THREAD, _p(thread_id=new.thread_id, tenant_id=new.tenant_id)
    ).first()
    if found is not None:
        visible = found.tenant_id == new.tenant_id
        if visible and new.thread_visible is not None:
            visible = bool(
                tx.conn.execute(
                    select(
                        exists().where(
                            THREADS.c.id == new.thread_id,
                            THREADS.c.tenant_id == new.tenant_id,
                            new.thread_visible,
                        )
                    )
                ).scalar()
            )
        if not visible:
            raise NotFound(f"No thread {new.thread_id!r}.")
        return True
    return False


def _insert_thread(tx: Tx, new: NewRun, now: datetime, *, thread_id: str | None) -> str:
    chosen = thread_id or new_id()
    holds = new.multitask_strategy == "reject" or new.lease_owner is not None
    tx.conn.execute(
        _INSERT_THREAD,
        {
            "id": chosen,
            "tenant_id": new.tenant_id,
            "status": "busy" if holds else "idle",
            "active_run_id": new.run_id if holds else None,
            "metadata": new.new_thread_metadata or {},
            "owner_id": new.new_thread_owner,
            "created_at": now,
            "updated_at": now,
        },
    )
    return chosen


def _claim_thread(
    tx: Tx, tenant_id: str, thread_id: str, run_id: str, *, queued_at: datetime | None
) -> bool:
    """Compare-and-set the thread to busy for `run_id`; False when another run holds it or
    an earlier pending run is waiting (FIFO; `queued_at` None: no other pending run at all)."""
    params = _p(thread_id=thread_id, tenant_id=tenant_id, run_id=run_id, now=utcnow())
    if queued_at is None:
        return tx.conn.execute(_CLAIM_ANY, params).rowcount == 1
    return tx.conn.execute(_CLAIM_FIFO, params | _p(queued_at=queued_at)).rowcount == 1


def release_thread(tx: Tx, *, tenant_id: str, thread_id: str, run_id: str, status: str) -> None:
    """Give the thread up (only if `run_id` still holds it) and wake its waiting runs."""
    freed = tx.conn.execute(
        _RELEASE_THREAD,
        _p(thread_id=thread_id, tenant_id=tenant_id, run_id=run_id, status=status, now=utcnow()),
    ).rowcount
    if freed:
        get_notifier().notify_in_tx(tx, thread_topic(tenant_id, thread_id), "free")


# --- starting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """What `start_run` found: `run` is set when the caller now holds it (running, leased);
    `wait_until`/`busy` say why a pending run cannot start yet; otherwise it is not startable
    (ended, or running elsewhere)."""

    run: Run | None = None
    busy: bool = False
    wait_until: datetime | None = None
    ended: str | None = None
    next_seq: int = 1  # where the started run's event log continues


def start_run(tx: Tx, run_id: str, *, owner: str, tenant_id: str | None = None) -> Start:
    """Take a pending run: its thread (FIFO), then pending -> running leased to `owner`.

    A pending run whose cancel was requested, or whose thread was deleted, ends here instead.
    """
    run = load_run(tx, run_id, tenant_id=tenant_id)
    if run is None or run.status != "pending":
        return Start(ended=run.status if run is not None else "missing")
    if run.cancel_requested:
        end_run(tx, run, from_status="pending", status="interrupted", error=CANCELLED)
        return Start(ended="interrupted")
    thread = (
        tx.conn.execute(_THREAD_STATE, _p(thread_id=run.thread_id, tenant_id=run.tenant_id)).first()
        if run.thread_id
        else None
    )
    if thread is None:
        end_run(tx, run, from_status="pending", status="error", error="thread deleted")
        return Start(ended="error")
    if run.not_before is not None and as_utc(run.not_before) > utcnow():
        return Start(wait_until=as_utc(run.not_before))
    held = thread.status == "busy" and thread.active_run_id == run.id
    if not held:
        assert run.thread_id is not None
        held = _claim_thread(
            tx, run.tenant_id, run.thread_id, run.id, queued_at=as_utc(run.created_at)
        )
    if not held:
        return Start(busy=True)
    now = utcnow()
    started = tx.conn.execute(
        _START_RUN, _p(run_id=run.id, now=now, owner=owner, until=lease_until(now))
    ).rowcount
    if not started:
        return Start(ended="changed")
    outbox.stage_event(
        tx.conn,
        tenant_id=run.tenant_id,
        type=outbox.RUN_STARTED,
        subject=run.id,
        data=run_event_data(run.id, run.thread_id, run.agent, status="running"),
    )
    run.status, run.lease_owner, run.started_at = "running", owner, now
    return Start(run=run, next_seq=last_seq(tx, run.id) + 1)


def take_over(tx: Tx, run_id: str, *, owner: str, tenant_id: str | None = None) -> Start:
    """Claim a `running` run whose lease lapsed (its executor died); `run` None when none."""
    now = utcnow()
    params = _p(run_id=run_id, owner=owner, until=lease_until(now), now=now)
    if tenant_id is None:
        taken = tx.conn.execute(_TAKE_OVER_ANY, params).rowcount
    else:
        taken = tx.conn.execute(_TAKE_OVER, params | _p(tenant_id=tenant_id)).rowcount
    if taken != 1:
        return Start()
    return Start(run=load_run(tx, run_id), next_seq=last_seq(tx, run_id) + 1)


def claim_pending(tx: Tx, run_id: str, *, owner: str, tenant_id: str) -> bool:
    """Hold a pending run for `owner` (a lease renewed while it waits for its turn); False when
    another receiver holds it live, or it is no longer pending."""
    now = utcnow()
    params = _p(run_id=run_id, tenant_id=tenant_id, owner=owner, now=now, until=lease_until(now))
    return tx.conn.execute(_CLAIM_PENDING, params).rowcount == 1


def dispatch_deadline(now: datetime, not_before: datetime | None = None) -> datetime:
    """When a pending run handed to the queue must have been received (its claim taken), else
    the sweep hands it out again: a lost send or a dead receiver costs one lease, not the
    stale-pending bound."""
    due = max(now, as_utc(not_before)) if not_before is not None else now
    return lease_until(due)


def lapsed_pending(tx: Tx, *, limit: int = 500) -> list[Run]:
    """Due pending runs whose claim or dispatch deadline lapsed, oldest first."""
    now = utcnow()
    rows = tx.conn.execute(
        select(RUNS)
        .where(
            RUNS.c.status == "pending",
            RUNS.c.lease_expires_at.is_not(None),
            RUNS.c.lease_expires_at < now,
            or_(RUNS.c.not_before.is_(None), RUNS.c.not_before <= now),
        )
        .order_by(RUNS.c.lease_expires_at)
        .limit(limit)
    ).mappings()
    return [_run(r) for r in rows]


def release_lapsed_pending(tx: Tx, run: Run) -> bool:
    """Clear a lapsed claim or deadline by compare-and-set (one sweeper hands the run out)."""
    now = utcnow()
    # Still lapsed: another sweeper cleared it (NULL), or a receiver claimed it (future).
    result = tx.conn.execute(
        update(RUNS)
        .where(
            RUNS.c.id == run.id,
            RUNS.c.status == "pending",
            RUNS.c.lease_expires_at < now,
        )
        .values(lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    return result.rowcount == 1


def renew_lease(tx: Tx, run_id: str, *, owner: str) -> bool:
    """Extend a running run's lease (or a pending run's claim); False when `owner` no longer
    holds it."""
    params = _p(run_id=run_id, owner=owner, until=lease_until())
    return tx.conn.execute(_RENEW_LEASE, params).rowcount == 1


def release_lease(tx: Tx, run_id: str, *, owner: str, redelivered: bool = False) -> None:
    """Let `owner`'s lease lapse now (its execution failed): the next delivery takes over.

    `redelivered`: the queue will deliver the message again, so the lease is marked REDELIVERING
    and the sweeper does not hand the run out a second time (see `expired_leases`).
    """
    marked = REDELIVERING + owner if redelivered else owner
    tx.conn.execute(_RELEASE_LEASE, _p(run_id=run_id, owner=owner, until=utcnow(), marked=marked))


def record_history_start(tx: Tx, run_id: str, *, owner: str, length: int) -> None:
    """Remember the thread's history length when the run started (a takeover trims to it)."""
    tx.conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.lease_owner == owner, RUNS.c.history_start.is_(None))
        .values(history_start=length)
    )


# --- ending ------------------------------------------------------------------------------------


class NotOurs(Exception):
    """The run is no longer this executor's (its lease lapsed and was taken over, or it ended):
    its outcome was not written."""


@dataclass
class Ending:
    """What ends a run besides its status: answer, usage, events, and the history to keep."""

    output: str | None = None
    last_agent: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    # The seq of the first closing event (`error`, `end`): the executor knows it; else read.
    next_seq: int | None = None
    history_len: int | None = None
    # The thread's history length before this run's items (write-behind SQL sessions).
    history_start: int | None = None
    # Conversation items to append in this transaction (write-behind SQL sessions).
    history: tuple[str, list[Any]] | None = None
    # Replaces the stored input (input a guardrail refused must not be kept).
    redact_input: str | None = None


def end_run(
    tx: Tx,
    run: Run,
    *,
    from_status: str,
    status: str,
    error: str | None = None,
    held_by: str | None = None,
    ending: Ending | None = None,
) -> list[EventRow]:
    """End a run: its outcome, closing events, thread, history and terminal CloudEvent, at once.

    A compare-and-set from `from_status` (and, with `held_by`, the lease owner): raises
    NotOurs when the run moved meanwhile, so the whole unit is undone. Returns the events it
    stored (the caller's, then `error` when failed, then `end`).
    """
    ending = ending or Ending()
    now = utcnow()
    statement = _END[(held_by is not None, ending.redact_input is not None)]
    params = _p(
        run_id=run.id,
        from_status=from_status,
        held_by=held_by,
        status=status,
        error=error,
        now=now,
        output=ending.output,
        last_agent=ending.last_agent,
        history_len=ending.history_len,
        history_start=ending.history_start,
        redacted=ending.redact_input,
        **{column: ending.usage.get(column, 0) for column in USAGE_COLUMNS},
    )
    if tx.conn.execute(statement, params).rowcount != 1:
        raise NotOurs(run.id)
    rows = list(ending.events)
    seq = ending.next_seq if ending.next_seq is not None else last_seq(tx, run.id) + 1
    if status == "error":
        rows.append((seq, "error", {"error": "RunError", "message": error or "failed"}))
        seq += 1
    rows.append((seq, "end", {"run_id": run.id, "status": status}))
    append_events(tx, tenant_id=run.tenant_id, run_id=run.id, rows=rows)
    if ending.history is not None:
        session_id, items = ending.history
        stage_history(tx.conn, session_id, items)
    if run.thread_id is not None:
        release_thread(
            tx,
            tenant_id=run.tenant_id,
            thread_id=run.thread_id,
            run_id=run.id,
            status="error" if status in ("error", "timeout") else "idle",
        )
    stage_run_end(
        tx.conn,
        tenant_id=run.tenant_id,
        run_id=run.id,
        type=run_event_type(status, error),
        data=run_event_data(run.id, run.thread_id, run.agent, status=status, error=error),
        webhook=run.webhook,
    )
    if run.on_completion == "delete" and run.thread_id is not None:
        detach_thread(tx, tenant_id=run.tenant_id, thread_id=run.thread_id)
    get_notifier().notify_in_tx(tx, run_topic(run.id), "end")
    run.status, run.error, run.finished_at = status, error, now
    return rows


def detach_thread(tx: Tx, *, tenant_id: str, thread_id: str) -> None:
    """Delete a stateless run's thread, grants and SQL history; keep its runs (thread_id NULL).

    In the outcome's transaction: a client that sees the run ended never finds the thread.
    """
    params = _p(tenant_id=tenant_id, thread_id=thread_id)
    for statement in _DETACH:
        tx.conn.execute(statement, params)
    clear_history(tx.conn, session_key(tenant_id, thread_id))


def request_cancel(tx: Tx, *, tenant_id: str, run_id: str) -> Run | None:
    """Flag a run for cancellation and tell its executor; a pending run ends here at once."""
    flagged = tx.conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.tenant_id == tenant_id)
        .values(cancel_requested=True, updated_at=utcnow())
    ).rowcount
    if not flagged:
        return None
    run = load_run(tx, run_id)
    if run is not None and run.status == "pending":
        end_run(tx, run, from_status="pending", status="interrupted", error=CANCELLED)
    else:
        get_notifier().notify_in_tx(tx, run_topic(run_id), "c")
    return run


def end_lapsed(tx: Tx, run_id: str, *, error: str) -> Run | None:
    """End a `running` run whose lease lapsed without an executor taking it over."""
    run = load_run(tx, run_id)
    if run is None or run.status != "running" or run.lease_expires_at is None:
        return None
    if as_utc(run.lease_expires_at) >= utcnow():
        return None
    try:
        end_run(
            tx,
            run,
            from_status="running",
            status="error",
            error=error,
            held_by=run.lease_owner,
        )
    except NotOurs:
        return None
    return run


def end_lapsed_pending(tx: Tx, run_id: str, *, error: str) -> Run | None:
    """End a pending run whose claim lapsed: the request that waited on it died with it."""
    run = load_run(tx, run_id)
    if run is None or run.status != "pending" or run.lease_expires_at is None:
        return None
    if as_utc(run.lease_expires_at) >= utcnow():
        return None
    end_run(tx, run, from_status="pending", status="error", error=error)
    return run


def expired_leases(
    tx: Tx, *, redelivery_grace: timedelta = timedelta(0), limit: int = 500
) -> list[Run]:
    """Running runs whose lease lapsed (their executor died), oldest lease first.

    A lease a failing queue delivery released (REDELIVERING) counts only `redelivery_grace`
    after it lapsed: until then the queue's own redelivery or dead-letter handles the run.
    """
    now = utcnow()
    rows = tx.conn.execute(
        select(RUNS)
        .where(
            RUNS.c.status == "running",
            RUNS.c.lease_expires_at.is_not(None),
            RUNS.c.lease_expires_at < now,
            or_(
                RUNS.c.lease_owner.is_(None),
                not_(RUNS.c.lease_owner.startswith(REDELIVERING, autoescape=True)),
                RUNS.c.lease_expires_at < now - redelivery_grace,
            ),
        )
        .order_by(RUNS.c.lease_expires_at)
        .limit(limit)
    ).mappings()
    return [_run(r) for r in rows]
