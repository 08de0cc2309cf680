"""The `rollup_usage` job: usage per tenant, agent and UTC day, recomputed idempotently."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from aca_jobs.rollup_usage import rollup
from aca_jobs.steps import STEP_PAUSE_ENV
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.jobs_models import UsageDaily
from shared.db.models import utcnow
from shared.platform.offline_model import OFFLINE_MODEL_NAME
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture
PRICES = json.dumps({OFFLINE_MODEL_NAME: {"input": 1.0, "output": 2.0}})


@pytest.fixture(autouse=True)
def prices(monkeypatch: pytest.MonkeyPatch, job_db: js.JobDb) -> None:
    """A price for the offline model, so costs are not all zero (in-process and subprocess)."""
    monkeypatch.setenv("ASCENT_MODEL_PRICES", PRICES)
    job_db.extra_env["ASCENT_MODEL_PRICES"] = PRICES
    get_settings.cache_clear()


async def _table() -> list[tuple[str, str, str, int, int, int, float]]:
    async with db_session() as db:
        rows = (
            await db.exec(
                select(UsageDaily).order_by(
                    col(UsageDaily.tenant_id), col(UsageDaily.day), col(UsageDaily.agent)
                )
            )
        ).all()
    return [
        (r.tenant_id, r.day, r.agent, r.runs, r.input_tokens, r.output_tokens, r.cost_usd)
        for r in rows
    ]


async def _seed(tenant_id: str, now: datetime) -> None:
    """Today: two assistant runs and one triage run; yesterday: one assistant run."""
    await js.make_run(tenant_id, None, created_at=now, tokens=(100, 50))
    await js.make_run(tenant_id, None, created_at=now, tokens=(10, 5))
    await js.make_run(tenant_id, None, created_at=now, agent="triage", tokens=(1, 1))
    await js.make_run(tenant_id, None, created_at=now - timedelta(days=1), tokens=(1000, 0))
    await js.make_run(tenant_id, None, created_at=now - timedelta(days=9), tokens=(7, 7))


def _expected(tenant_id: str, now: datetime) -> list[tuple[str, str, str, int, int, int, float]]:
    today = now.astimezone(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    return [
        (tenant_id, yesterday, "assistant", 1, 1000, 0, 1.0),
        (tenant_id, today.isoformat(), "assistant", 2, 110, 55, 0.22),
        (tenant_id, today.isoformat(), "triage", 1, 1, 1, 0.003),
    ]


async def test_rollup_sums_tokens_and_cost_per_tenant_agent_and_day(job_db: js.JobDb) -> None:
    """Rows hold each day's run count, tokens and cost; days outside the window are left out."""
    now = utcnow().replace(hour=12)
    a, b = await js.make_tenant("a"), await js.make_tenant("b")
    await _seed(a, now)
    await _seed(b, now)
    await rollup(now=now, days=2)
    assert await _table() == sorted(_expected(a, now) + _expected(b, now))


async def test_rollup_twice_gives_the_same_table(job_db: js.JobDb) -> None:
    """Recomputing is an upsert of totals: a second run changes nothing."""
    now = utcnow().replace(hour=12)
    tenant = await js.make_tenant()
    await _seed(tenant, now)
    await rollup(now=now, days=2)
    first = await _table()
    await rollup(now=now, days=2)
    assert await _table() == first == _expected(tenant, now)


async def test_two_rollup_processes_at_once_do_not_double_count(job_db: js.JobDb) -> None:
    """Two `python -m aca_jobs rollup_usage` at once exit 0 and the totals are not doubled."""
    now = utcnow()
    tenants = [await js.make_tenant() for _ in range(3)]
    for tenant in tenants:
        await js.make_run(tenant, None, created_at=now, tokens=(100, 50))
    first = await js.start_job("rollup_usage", job_db, tag="a")
    second = await js.start_job("rollup_usage", job_db, tag="b")
    codes = await asyncio.gather(first.wait(), second.wait())
    assert codes == [0, 0], first.log() + second.log()
    day = now.date().isoformat()
    assert await _table() == [(t, day, "assistant", 1, 100, 50, 0.2) for t in sorted(tenants)]


async def test_rollup_killed_between_tenants_is_finished_by_the_next_run(job_db: js.JobDb) -> None:
    """SIGKILL after the first tenant's step; the next run writes the other tenants' rows."""
    now = utcnow()
    tenants = [await js.make_tenant() for _ in range(3)]
    for tenant in tenants:
        await js.make_run(tenant, None, created_at=now, tokens=(100, 50))
    pause = job_db.data_dir / "pause"
    job_db.data_dir.mkdir(parents=True, exist_ok=True)
    pause.write_text("hold")
    job = await js.start_job("rollup_usage", job_db, **{STEP_PAUSE_ENV: str(pause)})

    async def first_step() -> bool:
        return len(await _table()) >= 1

    await js.until(first_step, "the first tenant's usage row")
    job.kill()
    await job.wait()
    assert len(await _table()) < len(tenants), "killed before the last tenant"
    await js.run_job("rollup_usage", job_db)
    day = now.date().isoformat()
    assert await _table() == [(t, day, "assistant", 1, 100, 50, 0.2) for t in sorted(tenants)]
