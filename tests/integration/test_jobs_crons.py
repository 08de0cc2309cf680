"""The `dispatch_crons` job: each due occurrence of a user cron fires exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from aca_jobs.steps import STEP_PAUSE_ENV
from shared.api import crons as cron_api
from shared.db.engine import db_session
from shared.db.jobs_models import Cron, CronFire
from shared.db.models import Run, utcnow
from shared.runs import crons
from shared.security.auth import Principal
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture
T0 = datetime(2031, 3, 4, 12, 2, 0, tzinfo=UTC)


async def _cron(
    tenant_id: str, schedule: str = "*/5 * * * *", *, now: datetime = T0, thread: str | None = None
) -> str:
    principal = Principal(tenant_id=tenant_id, key_id="key-1", user_id="u-1")
    body = cron_api.CronCreate(schedule=schedule, agent_id="assistant", input="ping")
    created = await cron_api.create_cron(principal, body, thread_id=thread, now=now)
    return str(created["cron_id"])


async def _runs_of(cron_id: str) -> list[Run]:
    async with db_session() as db:
        runs = (await db.exec(select(Run))).all()
    return [r for r in runs if (r.metadata_ or {}).get("cron_id") == cron_id]


async def _fires(cron_id: str | None = None) -> int:
    return await (js.count(CronFire, cron_id=cron_id) if cron_id else js.count(CronFire))


async def test_a_cron_due_twice_in_a_window_fires_exactly_twice(job_db: js.JobDb) -> None:
    """*/5 from 12:02: dispatching at 12:05:30, 12:05:40 and 12:10:10 fires 12:05 and 12:10."""
    cron_id = await _cron(await js.make_tenant())
    for moment in ("12:05:30", "12:05:40", "12:10:10", "12:10:50"):
        hour, minute, second = map(int, moment.split(":"))
        await crons.dispatch_due(now=T0.replace(hour=hour, minute=minute, second=second))
    runs = await _runs_of(cron_id)
    assert sorted((r.metadata_ or {})["scheduled_for"] for r in runs) == [
        T0.replace(minute=5).isoformat(),
        T0.replace(minute=10).isoformat(),
    ]


async def test_a_fired_run_is_a_pending_agent_protocol_run(job_db: js.JobDb) -> None:
    """A stateless cron's run is pending on a new thread, with the cron's input and user."""
    cron_id = await _cron(await js.make_tenant())
    [fired] = await crons.dispatch_due(now=T0 + timedelta(minutes=3))
    [run] = await _runs_of(cron_id)
    assert fired.run_id == run.id
    assert run.status in ("pending", "running", "success")
    assert run.input_items == [{"role": "user", "content": "ping"}]
    assert (run.agent, run.user_id, run.multitask_strategy) == ("assistant", "u-1", "enqueue")
    assert run.on_completion == "delete" and run.thread_id is not None


async def test_missed_occurrences_fire_only_the_latest_once(job_db: js.JobDb) -> None:
    """Down from 12:02 to 12:31: one run for 12:30; 12:05 to 12:25 are skipped, not replayed."""
    cron_id = await _cron(await js.make_tenant())
    [fired] = await crons.dispatch_due(now=T0.replace(minute=31))
    assert fired.scheduled_for == T0.replace(minute=30) and fired.skipped == 5
    assert len(await _runs_of(cron_id)) == 1
    async with db_session() as db:
        cron = await db.get(Cron, cron_id)
    assert cron is not None and cron.next_run_at is not None
    assert cron.next_run_at.replace(tzinfo=UTC) == T0.replace(minute=35)


async def test_skewed_dispatchers_fire_an_occurrence_once(job_db: js.JobDb) -> None:
    """A replica whose clock runs 2 minutes fast fires 12:05; one 2 minutes slow adds nothing."""
    cron_id = await _cron(await js.make_tenant())
    fast = await crons.dispatch_due(now=T0.replace(minute=5, second=10) + timedelta(minutes=2))
    slow = await crons.dispatch_due(now=T0.replace(minute=5, second=10) - timedelta(minutes=2))
    real = await crons.dispatch_due(now=T0.replace(minute=5, second=10))
    assert len(fast) == 1 and slow == [] and real == []
    assert len(await _runs_of(cron_id)) == 1


async def test_concurrent_dispatchers_in_one_process_fire_each_cron_once(job_db: js.JobDb) -> None:
    """Three dispatch_due calls racing on their own connections fire every cron once."""
    tenant = await js.make_tenant()
    ids = [await _cron(tenant) for _ in range(8)]
    now = T0.replace(minute=6)
    results = await asyncio.gather(*(crons.dispatch_due(now=now) for _ in range(3)))
    assert sorted(f.cron_id for r in results for f in r) == sorted(ids)
    assert await _fires() == len(ids)


# Yearly, so a subprocess dispatcher on the real clock never meets a second occurrence.
YEARLY = "0 0 1 1 *"


async def _make_due(cron_ids: list[str]) -> None:
    """Move the crons' next occurrence into the past (real clock) for a subprocess dispatcher."""
    past = datetime(2020, 1, 1, tzinfo=UTC)
    async with db_session() as db:
        await db.exec(update(Cron).where(col(Cron.id).in_(cron_ids)).values(next_run_at=past))
        await db.commit()


async def test_two_dispatch_processes_at_once_fire_each_cron_once(job_db: js.JobDb) -> None:
    """Two `python -m aca_jobs dispatch_crons` at once: one fire and one run per cron."""
    tenant = await js.make_tenant()
    ids = [await _cron(tenant, YEARLY, now=utcnow()) for _ in range(6)]
    await _make_due(ids)
    first = await js.start_job("dispatch_crons", job_db, tag="a")
    second = await js.start_job("dispatch_crons", job_db, tag="b")
    codes = await asyncio.gather(first.wait(), second.wait())
    assert codes == [0, 0], first.log() + second.log()
    for cron_id in ids:
        assert await _fires(cron_id) == 1
        assert len(await _runs_of(cron_id)) == 1


async def test_dispatch_killed_between_crons_is_finished_once_by_the_next_run(
    job_db: js.JobDb,
) -> None:
    """SIGKILL after the first fire; the next run fires the others, and none fires twice."""
    tenant = await js.make_tenant()
    ids = [await _cron(tenant, YEARLY, now=utcnow()) for _ in range(3)]
    await _make_due(ids)
    pause = job_db.data_dir / "pause"
    job_db.data_dir.mkdir(parents=True, exist_ok=True)
    pause.write_text("hold")
    job = await js.start_job("dispatch_crons", job_db, **{STEP_PAUSE_ENV: str(pause)})

    async def first_fire() -> bool:
        return await _fires() >= 1

    await js.until(first_fire, "the first cron fired")
    job.kill()
    await job.wait()
    assert await _fires() < len(ids)
    await js.run_job("dispatch_crons", job_db)
    for cron_id in ids:
        assert await _fires(cron_id) == 1
        assert len(await _runs_of(cron_id)) == 1
