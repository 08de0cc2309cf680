"""Exactly one outcome per run on at-least-once delivery: duplicates, races, leases, poison.

In-process on the embedded stage (SQLite, offline model), through the real queue-triggered
functions of function_app as the dev host indexes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update
from sqlmodel import col, select

from local.queue_host import QueueListener, QueueTrigger, queue_triggers
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.db.models import Run, RunEvent, Thread, utcnow
from shared.db.types import as_utc
from shared.memory.sessions import build_session
from shared.platform.queues import QueueOptions, get_queue_backend, reset_queue_backends
from shared.runs.dispatch import RunMessage, send_run_message
from shared.runs.service import execute_message
from tests.queue_support import eventually

pytestmark = pytest.mark.asyncio
TENANT = "t-queue"


@pytest_asyncio.fixture
async def schema(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The embedded schema with one tenant; short leases; the queue backend reset."""
    monkeypatch.setenv("QUEUE_BACKEND", "embedded")
    monkeypatch.setenv("ASCENT_RUN_LEASE_SECONDS", "1")
    reset_queue_backends()
    await migrate(get_engine())
    async with db_session() as db:
        await repo.create_tenant(session=db, name="q", tenant_id=TENANT)
        await db.commit()
    yield
    reset_queue_backends()
    await get_engine().dispose()


async def pending_run(text: str = "hello there") -> Run:
    """A persisted pending run of the assistant on a new thread."""
    async with db_session() as db:
        thread = await repo.create_thread(session=db, tenant_id=TENANT)
        now = utcnow()
        run = Run(
            tenant_id=TENANT,
            thread_id=thread.id,
            agent="assistant",
            status="pending",
            input=text,
            input_items=[{"role": "user", "content": text}],
            created_at=now,
            updated_at=now,
        )
        db.add(run)
        await db.commit()
        await db.refresh(run)
    return run


async def reload(run_id: str) -> Run:
    """The run as stored now."""
    async with db_session() as db:
        found = await db.get(Run, run_id)
    assert found is not None
    return found


async def end_events(run_id: str) -> int:
    """How many `end` events the run has (one per recorded outcome)."""
    async with db_session() as db:
        rows = (
            await db.exec(
                select(RunEvent).where(RunEvent.run_id == run_id, col(RunEvent.event) == "end")
            )
        ).all()
    return len(rows)


async def history(run: Run) -> list[Any]:
    """The run's thread history (SDK items)."""
    assert run.thread_id is not None
    return list(await build_session(run.tenant_id, run.thread_id).get_items())


async def set_run(run_id: str, **values: Any) -> None:
    """Put a run in a state directly (what an executor elsewhere, or a dead one, left)."""
    async with db_session() as db:
        await db.exec(update(Run).where(col(Run.id) == run_id).values(**values))
        await db.commit()


async def hold_thread(run: Run) -> None:
    """Mark the run's thread busy with it (as its executor claimed it)."""
    async with db_session() as db:
        await db.exec(
            update(Thread)
            .where(col(Thread.id) == run.thread_id)
            .values(status="busy", active_run_id=run.id)
        )
        await db.commit()


def agent_runs_trigger() -> QueueTrigger:
    """The real `agent-runs` queue trigger of function_app, indexed as the dev host does."""
    from function_app import app
    from shared.api.openapi import app_functions

    found = [t for t in queue_triggers(app_functions(app)) if t.queue_name == "agent-runs"]
    assert len(found) == 1
    return found[0]


def user_items(items: list[Any], text: str) -> int:
    """How many user items with this text the history holds."""
    return sum(1 for i in items if i.get("role") == "user" and i.get("content") == text)


async def test_same_message_delivered_twice_has_one_outcome(schema: None) -> None:
    """Two identical messages for one run: one success, one end event, the input once."""
    run = await pending_run("duplicate me")
    message = RunMessage(run_id=run.id, tenant_id=TENANT)
    await send_run_message(message)
    await send_run_message(message)
    backend = get_queue_backend()
    options = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2)
    listener = QueueListener(
        agent_runs_trigger(), backend=backend, options=options, message_lease=5
    )
    task = asyncio.create_task(listener.run())
    try:

        async def settled() -> bool:
            return (await reload(run.id)).status == "success" and (
                await backend.count("agent-runs") == 0
            )

        await eventually(settled, "both messages to be handled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await end_events(run.id) == 1
    assert user_items(await history(run), "duplicate me") == 1


async def test_two_workers_racing_on_one_run_have_one_outcome(schema: None) -> None:
    """Two executors started together on one run: one success, one end event."""
    run = await pending_run("race me")
    await asyncio.gather(execute_message(run.id, TENANT), execute_message(run.id, TENANT))
    assert (await reload(run.id)).status == "success"
    assert await end_events(run.id) == 1
    assert user_items(await history(run), "race me") == 1


async def test_lapsed_lease_is_taken_over_and_finishes_once(schema: None) -> None:
    """A run left `running` by a dead executor (lease lapsed) finishes once on redelivery; on
    the SQL backend nothing of its unfinished turn was ever written, so the turn is there once."""
    run = await pending_run("take me over")
    await hold_thread(run)
    await set_run(
        run.id,
        status="running",
        lease_owner="dead-worker",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    await execute_message(run.id, TENANT)
    done = await reload(run.id)
    assert done.status == "success" and done.lease_owner != "dead-worker"
    assert await end_events(run.id) == 1
    assert user_items(await history(run), "take me over") == 1


async def test_a_takeover_trims_what_a_dead_executor_wrote_to_redis(
    schema: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a session backend the SDK writes as it goes (Redis), a takeover trims the history
    back to where the run started, so the turn is there once."""
    from shared.core.settings import get_settings
    from shared.memory.sessions import close_clients

    monkeypatch.setenv("SESSION_BACKEND", "redis")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    run = await pending_run("take me over")
    assert run.thread_id is not None
    session = build_session(TENANT, run.thread_id)
    try:
        # What the dead executor left: its input saved, the run running under a lapsed lease.
        await session.add_items([{"role": "user", "content": "take me over"}])
        await hold_thread(run)
        await set_run(
            run.id,
            status="running",
            lease_owner="dead-worker",
            lease_expires_at=utcnow() - timedelta(seconds=5),
            history_start=0,
        )
        await execute_message(run.id, TENANT)
        assert (await reload(run.id)).status == "success"
        assert user_items(await history(run), "take me over") == 1
    finally:
        await session.clear_session()
        await close_clients()


async def test_live_lease_makes_a_redelivery_a_no_op(schema: None) -> None:
    """A redelivered message for a run another worker holds under a live lease does nothing."""
    run = await pending_run("busy")
    await set_run(
        run.id,
        status="running",
        lease_owner="live-worker",
        lease_expires_at=utcnow() + timedelta(hours=1),
    )
    await execute_message(run.id, TENANT)
    still = await reload(run.id)
    assert (still.status, still.lease_owner) == ("running", "live-worker")
    assert await end_events(run.id) == 0


async def test_sweeper_reenqueues_lapsed_and_stale_pending_runs(
    schema: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sweep_leases sends one message per stranded run: lapsed lease, or pending too long."""
    from aca_jobs.sweep_leases import sweep

    monkeypatch.setenv("ASCENT_SWEEP_PENDING_AFTER_SECONDS", "1")
    from shared.core.settings import get_settings

    get_settings.cache_clear()
    lapsed, stale, fresh = await pending_run("a"), await pending_run("b"), await pending_run("c")
    await set_run(
        lapsed.id,
        status="running",
        lease_owner="q:dead",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    await set_run(stale.id, updated_at=utcnow() - timedelta(hours=1))
    report = await sweep()
    assert report.expired == [lapsed.id]
    assert report.stale_pending == [stale.id]
    assert fresh.id not in report.stale_pending
    assert await get_queue_backend().count("agent-runs") == 2
    # A second sweep right away sends nothing for the stale pending run.
    assert (await sweep()).stale_pending == []


async def test_a_failed_queue_delivery_lapses_its_lease_marked_for_redelivery(
    schema: None,
) -> None:
    """Releasing a failed queue delivery's lease lapses it now and marks it REDELIVERING; a
    failed execution with no queue behind it (inline) keeps its owner, for the sweeper."""
    from functools import partial

    from shared.db import direct
    from shared.runs.records import REDELIVERING, release_lease

    queued, inline = await pending_run("queued"), await pending_run("inline")
    for run, owner in ((queued, "q:one"), (inline, "q:two")):
        await set_run(
            run.id,
            status="running",
            lease_owner=owner,
            lease_expires_at=utcnow() + timedelta(seconds=30),
        )
    await direct.write(partial(release_lease, run_id=queued.id, owner="q:one", redelivered=True))
    await direct.write(partial(release_lease, run_id=inline.id, owner="q:two"))
    marked, kept = await reload(queued.id), await reload(inline.id)
    assert marked.lease_owner == REDELIVERING + "q:one" and kept.lease_owner == "q:two"
    for run in (marked, kept):
        assert run.lease_expires_at is not None and as_utc(run.lease_expires_at) <= utcnow()


async def test_sweeper_leaves_a_failed_delivery_to_the_queue_until_the_pending_bound(
    schema: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose queue delivery raised (lease marked REDELIVERING) gets no second message
    from the sweeper: the queue redelivers it or dead-letters it. Only past
    ASCENT_SWEEP_PENDING_AFTER_SECONDS does the sweeper hand it out, as a safety net."""
    from aca_jobs.sweep_leases import sweep
    from shared.core.settings import get_settings
    from shared.runs.records import REDELIVERING

    run = await pending_run("flaky")
    await set_run(
        run.id,
        status="running",
        lease_owner=REDELIVERING + "q:failed",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    assert (await sweep()).expired == []
    assert await get_queue_backend().count("agent-runs") == 0
    monkeypatch.setenv("ASCENT_SWEEP_PENDING_AFTER_SECONDS", "1")
    get_settings.cache_clear()
    assert (await sweep()).expired == [run.id]
    assert await get_queue_backend().count("agent-runs") == 1


async def test_sweeper_ends_a_lapsed_run_whose_client_went_with_its_executor(
    schema: None,
) -> None:
    """A run executed inside its request (lease owner `req:`, on_disconnect cancel) whose lease
    lapsed is ended `error` with its thread freed, not re-run: its client is gone too."""
    from aca_jobs.sweep_leases import sweep
    from shared.runs.records import EXECUTOR_LOST

    run = await pending_run("sync")
    await hold_thread(run)
    await set_run(
        run.id,
        status="running",
        on_disconnect="cancel",
        lease_owner="req:dead",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    report = await sweep()
    assert report.ended == [run.id] and report.expired == []
    ended = await reload(run.id)
    assert (ended.status, ended.error) == ("error", EXECUTOR_LOST)
    async with db_session() as db:
        thread = await db.get(Thread, (run.thread_id, run.tenant_id))
    assert thread is not None and (thread.status, thread.active_run_id) == ("error", None)
    assert await get_queue_backend().count("agent-runs") == 0


async def test_poison_trigger_marks_the_run_error(schema: None) -> None:
    """A dead-lettered run message ends its (unheld) run in `error`, with the reason."""
    from functions.runs_queue import POISONED

    run = await pending_run("poisoned")
    from function_app import app
    from shared.api.openapi import app_functions

    poison = [t for t in queue_triggers(app_functions(app)) if t.queue_name == "agent-runs-poison"][
        0
    ]
    from local.queue_host import to_queue_message
    from shared.platform.queues import ReceivedMessage

    body = RunMessage(run_id=run.id, tenant_id=TENANT).to_json().encode()
    received = ReceivedMessage("m1", "p1", "", 1, None, None, None)
    await poison.user_function(msg=to_queue_message(received, body))
    failed = await reload(run.id)
    assert (failed.status, failed.error) == ("error", POISONED)
    assert await end_events(run.id) == 1
