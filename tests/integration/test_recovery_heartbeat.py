"""Recovery by heartbeat, in-process: pending claims and dispatch deadlines.

On the embedded stage (SQLite, offline model), through the run service the queue trigger
calls. The multi-process scenarios are in tests/chaos/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db.models import utcnow
from shared.platform.queues import get_queue_backend
from shared.runs.service import execute_message, sweep
from tests.integration.test_queue_exactly_once import (
    TENANT,
    end_events,
    hold_thread,
    pending_run,
    reload,
    schema,
    set_run,
)

__all__ = ["schema"]

pytestmark = pytest.mark.asyncio


async def test_a_duplicate_message_of_a_run_a_live_receiver_holds_is_acknowledged(
    schema: None,
) -> None:
    """A pending run claimed by a live receiver (its claim unexpired): a second message is
    acknowledged at once, without waiting for or executing the run."""
    run = await pending_run("dup")
    await set_run(run.id, lease_owner="q:alive", lease_expires_at=utcnow() + timedelta(hours=1))
    await execute_message(run.id, TENANT)
    after = await reload(run.id)
    assert (after.status, after.lease_owner) == ("pending", "q:alive")
    assert await end_events(run.id) == 0


async def test_a_pending_run_whose_receiver_died_is_handed_out_again_once(
    schema: None,
) -> None:
    """A claim that lapsed (its receiver stopped renewing) is cleared and the run re-enqueued
    by one sweep; the next sweep sends nothing more."""
    run = await pending_run("orphan")
    await set_run(run.id, lease_owner="q:dead", lease_expires_at=utcnow() - timedelta(seconds=1))
    report = await sweep()
    assert report.lapsed_pending == [run.id]
    after = await reload(run.id)
    assert (after.lease_owner, after.lease_expires_at) == (None, None)
    assert await get_queue_backend().count("agent-runs") == 1
    assert (await sweep()).lapsed_pending == []


async def test_the_receiver_of_a_handed_out_run_executes_it(schema: None) -> None:
    """After the sweep hands a dead receiver's run out, its message executes it to success."""
    run = await pending_run("orphan")
    await set_run(run.id, lease_owner="q:dead", lease_expires_at=utcnow() - timedelta(seconds=1))
    await sweep()
    await execute_message(run.id, TENANT)
    assert (await reload(run.id)).status == "success"
    assert await end_events(run.id) == 1


async def test_a_run_waiting_inside_a_dead_request_is_ended_with_its_client(
    schema: None,
) -> None:
    """A pending run a request waited on (claim `req:`, on_disconnect cancel) whose claim
    lapsed is ended `error`, not re-run: its client died with the request."""
    from shared.runs.records import EXECUTOR_LOST

    blocker, run = await pending_run("first"), await pending_run("second")
    await hold_thread(blocker)
    await set_run(
        run.id,
        on_disconnect="cancel",
        lease_owner="req:dead",
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )
    report = await sweep()
    assert run.id in report.ended and report.lapsed_pending == []
    ended = await reload(run.id)
    assert (ended.status, ended.error) == ("error", EXECUTOR_LOST)


async def test_an_unreceived_run_past_its_dispatch_deadline_is_sent_again(
    schema: None,
) -> None:
    """A pending run nobody received within a lease of its hand-off (a lost send) gets one
    more message from the sweep, long before the stale-pending bound."""
    run = await pending_run("lost")
    await set_run(run.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert (await sweep()).lapsed_pending == [run.id]
    assert await get_queue_backend().count("agent-runs") == 1


async def test_the_timer_sweeps_once_per_sweep_interval(
    schema: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Azure timer ticks every 5 s but sweeps only when a sweep interval (15 s by
    default) passed since this process last swept."""
    from shared.core.settings import get_settings
    from shared.runs import service

    monkeypatch.delenv("ASCENT_RUN_LEASE_SECONDS")
    get_settings.cache_clear()
    service._LAST_SWEEP.clear()
    assert await service.sweep_if_due() is not None
    assert await service.sweep_if_due() is None
