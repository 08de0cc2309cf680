"""The usage report behind `GET /api/usage`: roll-ups for past days, today's runs counted live."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from aca_jobs.rollup_usage import rollup
from shared.api.usage import UsageQuery, report_csv, report_json, usage_report
from shared.core.settings import get_settings
from shared.db.models import utcnow
from shared.platform.offline_model import OFFLINE_MODEL_NAME
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture
PRICES = json.dumps({OFFLINE_MODEL_NAME: {"input": 1.0, "output": 2.0}})
BOUND = {"configurable": {"assistant_id": "asst-1", "assistant_version": 2}}


@pytest.fixture(autouse=True)
def prices(monkeypatch: pytest.MonkeyPatch, job_db: js.JobDb) -> None:
    """A price for the offline model, so costs are not all zero."""
    monkeypatch.setenv("ASCENT_MODEL_PRICES", PRICES)
    get_settings.cache_clear()


def _rows(body: dict[str, object]) -> list[tuple[object, ...]]:
    rows = body["rows"]
    assert isinstance(rows, list)
    return [(r["day"], r["agent"], r["assistant_id"], r["runs"], r["input_tokens"]) for r in rows]


async def test_past_days_come_from_the_rollup_and_today_from_the_runs(job_db: js.JobDb) -> None:
    """A run created after the last roll-up counts today; past days are the rolled-up rows."""
    now = utcnow()
    tenant = await js.make_tenant()
    await js.make_run(tenant, None, created_at=now - timedelta(days=1), tokens=(1000, 0))
    await js.make_run(tenant, None, created_at=now, tokens=(10, 5))
    await rollup(now=now, days=2)
    await js.make_run(tenant, None, created_at=now, tokens=(20, 5))  # after the roll-up
    await js.make_run(tenant, None, created_at=now - timedelta(days=1), tokens=(3, 0))  # not yet

    body = report_json(await usage_report(tenant, UsageQuery.model_validate({})))

    yesterday, today = (now - timedelta(days=1)).date().isoformat(), now.date().isoformat()
    assert _rows(body) == [
        (yesterday, "assistant", None, 1, 1000),
        (today, "assistant", None, 2, 30),
    ]
    assert body["totals"] == {
        "runs": 3,
        "requests": 3,
        "input_tokens": 1030,
        "output_tokens": 10,
        "total_tokens": 1040,
        "cost_usd": 1.05,
    }
    assert "tenant_id" not in body["rows"][0]


async def test_runs_of_an_assistant_are_counted_apart(job_db: js.JobDb) -> None:
    """Runs bound to an assistant form their own row, named by the assistant's id."""
    now = utcnow()
    tenant = await js.make_tenant()
    await js.make_run(tenant, None, created_at=now, tokens=(10, 0))
    await js.make_run(tenant, None, created_at=now, tokens=(7, 0), config=BOUND)

    body = report_json(await usage_report(tenant, UsageQuery.model_validate({})))

    today = now.date().isoformat()
    assert _rows(body) == [(today, "assistant", None, 1, 10), (today, "assistant", "asst-1", 1, 7)]


async def test_a_tenant_sees_only_its_usage_and_the_admin_sees_each_tenant(
    job_db: js.JobDb,
) -> None:
    """The tenant report holds its own runs only; the platform view names every row's tenant."""
    now = utcnow()
    a, b = await js.make_tenant("a"), await js.make_tenant("b")
    await js.make_run(a, None, created_at=now, tokens=(1, 0))
    await js.make_run(b, None, created_at=now, tokens=(2, 0), agent="triage")

    mine = report_json(await usage_report(a, UsageQuery.model_validate({})))
    everyone = report_json(await usage_report(None, UsageQuery.model_validate({})))

    assert [r["agent"] for r in mine["rows"]] == ["assistant"]
    assert {(r["tenant_id"], r["agent"]) for r in everyone["rows"]} == {
        (a, "assistant"),
        (b, "triage"),
    }


async def test_csv_has_a_header_and_one_line_per_row(job_db: js.JobDb) -> None:
    """The CSV export holds the same rows as the JSON report, under a header line."""
    now = utcnow()
    tenant = await js.make_tenant()
    await js.make_run(tenant, None, created_at=now, tokens=(10, 5), config=BOUND)

    lines = list(csv.DictReader(io.StringIO(report_csv(await usage_report(tenant, UsageQuery())))))

    assert lines == [
        {
            "day": now.date().isoformat(),
            "agent": "assistant",
            "assistant_id": "asst-1",
            "model": OFFLINE_MODEL_NAME,
            "runs": "1",
            "requests": "1",
            "input_tokens": "10",
            "output_tokens": "5",
            "total_tokens": "15",
            "cost_usd": "0.02",
        }
    ]
