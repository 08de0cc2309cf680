"""The `rollup_usage` job: tokens and estimated cost per tenant, agent and UTC day.

For each tenant (one step each) it recomputes the last ASCENT_USAGE_ROLLUP_DAYS UTC days from
`runs` (by the run's creation time) and writes `usage_daily` with an upsert: the rows are set
to the recomputed totals, never incremented, and a day/agent that no longer has runs loses its
row. Running it twice, or twice at once, gives the same table; a replica killed halfway leaves
whole tenants done and the next run recomputes the rest. Cost = input and output tokens times
the model's price per 1k tokens (shared/runs/usage.py, ASCENT_MODEL_PRICES).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from aca_jobs.steps import run_job, step_done
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.jobs_models import UsageDaily
from shared.db.models import Tenant, utcnow
from shared.runs.usage import COUNTERS, UsageKey, count_runs, current_model, price_of

NAME = "rollup_usage"
SCHEDULE = "5 * * * *"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def window(now: datetime, days: int) -> tuple[datetime, datetime, list[str]]:
    """The UTC window [start, end) of the last `days` days ending today, and their labels."""
    today = _aware(now).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    labels = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    return start, end, labels


async def _upsert(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = (await db.connection()).dialect.name
    table: Any = UsageDaily.__table__  # type: ignore[attr-defined]
    stmt: Any = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(rows)
    updated = {c: stmt.excluded[c] for c in ("model", *COUNTERS, "cost_usd", "updated_at")}
    await db.exec(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "day", "agent", "assistant_id"], set_=updated
        )
    )


async def rollup_tenant(tenant_id: str, *, now: datetime, days: int) -> int:
    """Recompute one tenant's usage rows for the window; return how many rows it holds."""
    start, end, labels = window(now, days)
    model = current_model()
    price = price_of(model)
    async with db_session() as db:
        totals = await count_runs(await db.connection(), tenant_id, start, end)
        stamp = utcnow()
        rows = [
            {
                "tenant_id": tenant_id,
                "day": key.day,
                "agent": key.agent,
                "assistant_id": key.assistant_id,
                "model": model,
                **counts,
                "cost_usd": round(price.cost(counts["input_tokens"], counts["output_tokens"]), 6),
                "updated_at": stamp,
            }
            for key, counts in sorted(totals.items())
        ]
        await _upsert(db, rows)
        # Days of the window whose agents no longer have runs (e.g. deleted) lose their rows.
        existing = (
            await db.exec(
                select(UsageDaily.day, UsageDaily.agent, UsageDaily.assistant_id).where(
                    col(UsageDaily.tenant_id) == tenant_id, col(UsageDaily.day).in_(labels)
                )
            )
        ).all()
        for day, agent, assistant_id in existing:
            if UsageKey(day, agent, assistant_id) not in totals:
                await db.exec(
                    delete(UsageDaily).where(
                        col(UsageDaily.tenant_id) == tenant_id,
                        col(UsageDaily.day) == day,
                        col(UsageDaily.agent) == agent,
                        col(UsageDaily.assistant_id) == assistant_id,
                    )
                )
        await db.commit()
    return len(rows)


async def rollup(*, now: datetime | None = None, days: int | None = None) -> int:
    """Recompute every tenant's usage for the window, one tenant per step; rows written."""
    moment = now or utcnow()
    span = days or get_settings().usage_rollup_days
    async with db_session() as db:
        tenants = (await db.exec(select(Tenant.id).order_by(col(Tenant.id)))).all()
    written = 0
    for tenant_id in tenants:
        count = await rollup_tenant(tenant_id, now=moment, days=span)
        written += count
        await step_done(NAME, f"tenant {tenant_id}: {count} usage rows")
    return written


def main() -> int:
    """Recompute the usage roll-up of the last days; exit 0 when done."""
    return run_job(rollup)
