"""Usage you can read: tokens and estimated cost per UTC day, agent and assistant.

`GET /api/usage` answers the caller's tenant; `GET /api/platform/usage` (platform admin key) the
same across tenants. Days before today come from the `usage_daily` roll-ups (recomputed hourly
by the `rollup_usage` job, so a past day is as fresh as the last roll-up); today is counted
from the runs table at request time. Cost is an estimate: tokens times the model's list price
(shared/runs/usage.py, ASCENT_MODEL_PRICES). A range covers at most `MAX_DAYS` days.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, select

from shared.core.errors import validated
from shared.db.engine import db_session
from shared.db.jobs_models import UsageDaily
from shared.db.models import Tenant
from shared.runs.usage import COUNTERS, count_runs, current_model, price_of

MAX_DAYS = 366
DEFAULT_DAYS = 30
CSV_COLUMNS = (
    "day",
    "agent",
    "assistant_id",
    "model",
    *COUNTERS,
    "cost_usd",
)


class UsageQuery(BaseModel):
    """Query of the usage endpoints: an inclusive range of UTC days and the answer's format."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: date | None = Field(None, alias="from", description="First UTC day (YYYY-MM-DD).")
    to: date | None = Field(None, description="Last UTC day, inclusive (default: today).")
    format: Literal["json", "csv"] = "json"

    @model_validator(mode="after")
    def _bounded(self) -> UsageQuery:
        first, last = self.span(today())
        if first > last:
            raise ValueError("'from' must not be after 'to'")
        if (last - first).days + 1 > MAX_DAYS:
            raise ValueError(f"a usage range covers at most {MAX_DAYS} days")
        return self

    def span(self, now: date) -> tuple[date, date]:
        """The inclusive (first, last) days asked for: the last 30 days by default."""
        last = self.to or now
        return self.from_ or last - timedelta(days=DEFAULT_DAYS - 1), last


class UsageRow(BaseModel):
    """Tokens and estimated cost of one day's runs of one agent (and assistant)."""

    tenant_id: str | None = Field(None, description="Set in the platform admin's view only.")
    day: str
    agent: str
    assistant_id: str | None
    model: str
    runs: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float


class UsageTotals(BaseModel):
    """The sums of a report's rows."""

    runs: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0


class UsageReport(BaseModel):
    """A usage report: its range, its rows (by day, then agent) and their totals."""

    model_config = ConfigDict(populate_by_name=True)

    tenant_id: str | None
    from_: str = Field(alias="from")
    to: str
    currency: Literal["USD"] = "USD"
    rows: list[UsageRow]
    totals: UsageTotals


def today() -> date:
    """The current UTC day."""
    return datetime.now(UTC).date()


def parse_query(params: Iterable[tuple[str, str]]) -> UsageQuery:
    """Validate the query string: 422 naming the parameter when it is wrong."""
    return validated(UsageQuery, dict(params), "The query has invalid parameters.")


async def _rolled_up(tenant_id: str | None, first: date, last: date) -> list[UsageRow]:
    labels = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    if not labels:
        return []
    query = select(UsageDaily).where(col(UsageDaily.day).in_(labels))
    if tenant_id is not None:
        query = query.where(col(UsageDaily.tenant_id) == tenant_id)
    async with db_session() as db:
        found = (await db.exec(query)).all()
    return [
        UsageRow(
            tenant_id=row.tenant_id,
            day=row.day,
            agent=row.agent,
            assistant_id=row.assistant_id or None,
            model=row.model,
            runs=row.runs,
            requests=row.requests,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            total_tokens=row.total_tokens,
            cost_usd=row.cost_usd,
        )
        for row in found
    ]


async def _counted_today(tenant_ids: list[str], day: date) -> list[UsageRow]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    model = current_model()
    price = price_of(model)
    rows: list[UsageRow] = []
    async with db_session() as db:
        connection = await db.connection()
        for tenant_id in tenant_ids:
            for key, counts in (await count_runs(connection, tenant_id, start, end)).items():
                cost = round(price.cost(counts["input_tokens"], counts["output_tokens"]), 6)
                rows.append(
                    UsageRow(
                        tenant_id=tenant_id,
                        day=key.day,
                        agent=key.agent,
                        assistant_id=key.assistant_id or None,
                        model=model,
                        cost_usd=cost,
                        **counts,
                    )
                )
    return rows


async def _all_tenants() -> list[str]:
    async with db_session() as db:
        return list((await db.exec(select(Tenant.id).order_by(col(Tenant.id)))).all())


async def usage_report(tenant_id: str | None, query: UsageQuery) -> UsageReport:
    """The usage of one tenant, or of every tenant when `tenant_id` is None (platform admin)."""
    now = today()
    first, last = query.span(now)
    rows = await _rolled_up(tenant_id, first, min(last, now - timedelta(days=1)))
    if first <= now <= last:
        tenants = [tenant_id] if tenant_id is not None else await _all_tenants()
        rows += await _counted_today(tenants, now)
    rows.sort(key=lambda r: (r.day, r.tenant_id or "", r.agent, r.assistant_id or ""))
    if tenant_id is not None:
        rows = [row.model_copy(update={"tenant_id": None}) for row in rows]
    totals = UsageTotals(
        **{name: sum(getattr(row, name) for row in rows) for name in COUNTERS},
        cost_usd=round(sum(row.cost_usd for row in rows), 6),
    )
    return UsageReport(
        tenant_id=tenant_id,
        from_=first.isoformat(),
        to=last.isoformat(),
        rows=rows,
        totals=totals,
    )


def report_json(report: UsageReport) -> dict[str, Any]:
    """The report as JSON (`from` by its wire name; `tenant_id` per row in the admin view)."""
    body = report.model_dump(mode="json", by_alias=True)
    if report.tenant_id is not None:
        for row in body["rows"]:
            row.pop("tenant_id", None)
    return body


def report_csv(report: UsageReport) -> str:
    """The report's rows as CSV with a header line (`tenant_id` first in the admin view)."""
    columns = CSV_COLUMNS if report.tenant_id is not None else ("tenant_id", *CSV_COLUMNS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in report.rows:
        values = row.model_dump()
        writer.writerow(["" if values[c] is None else values[c] for c in columns])
    return out.getvalue()
