"""The `purge_retention` job: what it deletes, idempotence, concurrency and crash recovery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from aca_jobs.purge_retention import purge
from aca_jobs.steps import STEP_PAUSE_ENV
from shared.db.engine import db_session
from shared.db.memory_models import StoreItem
from shared.db.models import Run, RunEvent, Thread, utcnow
from shared.memory import store as memory
from shared.memory.retention import set_retention
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture


async def _world(tenant_id: str) -> dict[str, str]:
    """Old and recent threads, runs, events and store items of one tenant."""
    now = utcnow()
    old_thread = await js.make_thread(tenant_id, updated_at=now - timedelta(days=200))
    live_thread = await js.make_thread(tenant_id, updated_at=now - timedelta(days=1))
    old_run = await js.make_run(
        tenant_id, live_thread, created_at=now - timedelta(days=120), events=2
    )
    quiet_run = await js.make_run(
        tenant_id, live_thread, created_at=now - timedelta(days=40), events=3
    )
    new_run = await js.make_run(tenant_id, live_thread, created_at=now, events=2)
    await js.make_run(tenant_id, old_thread, created_at=now - timedelta(days=200), events=1)
    await memory.put(tenant_id=tenant_id, namespace=("n",), key="expired", value={"a": 1})
    await memory.put(tenant_id=tenant_id, namespace=("n",), key="kept", value={"a": 2})
    async with db_session() as db:
        await db.exec(
            update(StoreItem)
            .where(StoreItem.tenant_id == tenant_id, StoreItem.key == "expired")  # type: ignore[arg-type]
            .values(expires_at=now - timedelta(minutes=1))
        )
        await db.commit()
    return {
        "old_thread": old_thread,
        "live_thread": live_thread,
        "old_run": old_run,
        "quiet_run": quiet_run,
        "new_run": new_run,
    }


async def _purged(tenant_id: str, world: dict[str, str]) -> bool:
    """Whether the tenant's state is exactly what the default retention leaves."""
    return (
        await js.count(Thread, id=world["old_thread"]) == 0
        and await js.count(Thread, id=world["live_thread"]) == 1
        and await js.count(Run, id=world["old_run"]) == 0
        and await js.count(Run, id=world["quiet_run"]) == 1
        and await js.count(RunEvent, run_id=world["quiet_run"]) == 0
        and await js.count(RunEvent, run_id=world["new_run"]) == 2
        and await js.count(StoreItem, tenant_id=tenant_id, key="expired") == 0
        and await js.count(StoreItem, tenant_id=tenant_id, key="kept") == 1
    )


async def _untouched(world: dict[str, str]) -> bool:
    return (
        await js.count(Thread, id=world["old_thread"]) == 1
        and await js.count(Run, id=world["old_run"]) == 1
    )


async def test_purge_applies_the_default_retention(job_db: js.JobDb) -> None:
    """Old threads, old runs, old run events and expired store items go; recent ones stay."""
    tenant = await js.make_tenant()
    world = await _world(tenant)
    totals = await purge()
    assert await _purged(tenant, world)
    assert totals["threads"] == 1 and totals["store_items"] == 1


async def test_purge_honours_a_tenants_retention_override(job_db: js.JobDb) -> None:
    """A tenant keeping threads and runs forever (0 days) loses neither; others still do."""
    keeper, other = await js.make_tenant("keep"), await js.make_tenant("other")
    kept, purged = await _world(keeper), await _world(other)
    async with db_session() as db:
        await set_retention(session=db, tenant_id=keeper, threads_days=0, runs_days=0)
        await db.commit()
    await purge()
    assert await _untouched(kept)
    assert await _purged(other, purged)


async def test_purge_twice_gives_the_same_result(job_db: js.JobDb) -> None:
    """A second run deletes nothing more and leaves the same state."""
    tenant = await js.make_tenant()
    world = await _world(tenant)
    await purge()
    again = await purge()
    assert again == {
        "run_events": 0,
        "runs": 0,
        "threads": 0,
        "store_items": 0,
        "idempotency_keys": 0,
    }
    assert await _purged(tenant, world)


async def test_two_purge_processes_at_once_both_succeed(job_db: js.JobDb) -> None:
    """Two `python -m aca_jobs purge_retention` at once both exit 0 and purge exactly once."""
    worlds = {t: await _world(t) for t in [await js.make_tenant() for _ in range(3)]}
    first = await js.start_job("purge_retention", job_db, tag="a")
    second = await js.start_job("purge_retention", job_db, tag="b")
    codes = await asyncio.gather(first.wait(), second.wait())
    assert codes == [0, 0], first.log() + second.log()
    for tenant, world in worlds.items():
        assert await _purged(tenant, world)


async def test_purge_killed_between_tenants_is_finished_by_the_next_run(job_db: js.JobDb) -> None:
    """SIGKILL after the first tenant's step; the next run purges the remaining tenants."""
    worlds = {t: await _world(t) for t in [await js.make_tenant() for _ in range(3)]}
    pause = job_db.data_dir / "pause"
    job_db.data_dir.mkdir(parents=True, exist_ok=True)
    pause.write_text("hold")
    job = await js.start_job("purge_retention", job_db, **{STEP_PAUSE_ENV: str(pause)})

    async def one_done() -> bool:
        return any([await _purged(t, w) for t, w in worlds.items()])

    await js.until(one_done, "the first tenant purged")
    job.kill()
    await job.wait()
    assert any([await _untouched(w) for w in worlds.values()]), "killed before the last tenant"
    await js.run_job("purge_retention", job_db)
    for tenant, world in worlds.items():
        assert await _purged(tenant, world)
