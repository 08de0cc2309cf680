"""`GET /api/usage` and `GET /api/platform/usage` over HTTP on a real dev host.

One SQLite dev host for the module (the report's SQL is checked on both backends by
tests/integration/test_usage_report.py); every test uses new tenants, so counts start at zero.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DevHost, start_devhost
from tests.e2e.problems import assert_problem
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """A dev host with the platform admin API enabled."""
    started = start_devhost(
        tmp_path_factory.mktemp("usage"), extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY}
    )
    yield started
    started.stop()


def _run(host: DevHost, key: str, text: str) -> dict[str, Any]:
    with host.client(key) as client:
        answer = client.post("/agents/triage/runs", json={"input": text})
    assert answer.status_code == 200, answer.text
    usage: dict[str, Any] = answer.json()["usage"]
    return usage


def test_usage_is_the_sum_of_the_tenants_runs_today(host: DevHost) -> None:
    """Today's totals equal the usage the runs reported, and another tenant's report is empty."""
    _, issued = new_tenant_with_key(host.base_url)
    _, other = new_tenant_with_key(host.base_url)
    runs = [_run(host, issued["key"], "Hello"), _run(host, issued["key"], "What can you do?")]

    with host.client(issued["key"]) as client:
        mine = client.get("/usage").json()
    with host.client(other["key"]) as client:
        theirs = client.get("/usage").json()

    for name in ("requests", "input_tokens", "output_tokens", "total_tokens"):
        assert mine["totals"][name] == sum(run[name] for run in runs), name
    assert mine["totals"]["runs"] == 2
    assert [row["agent"] for row in mine["rows"]] == ["triage"]
    assert theirs["rows"] == [] and theirs["totals"]["runs"] == 0


def test_usage_answers_csv_when_asked(host: DevHost) -> None:
    """`Accept: text/csv` gives the same rows as CSV, as a download."""
    _, issued = new_tenant_with_key(host.base_url)
    _run(host, issued["key"], "Hello")

    with host.client(issued["key"]) as client:
        answer = client.get("/usage", headers={"Accept": "text/csv"})

    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(row["agent"], row["runs"]) for row in rows] == [("triage", "1")]


def test_a_bad_range_is_a_problem(host: DevHost) -> None:
    """A day that is not YYYY-MM-DD is a 422 problem+json."""
    with host.client() as client:
        answer = client.get("/usage", params={"from": "last week"})
    assert_problem(answer, 422)


def test_the_platform_view_needs_the_admin_key_and_names_each_tenant(host: DevHost) -> None:
    """A tenant key gets 403 on the cross-tenant view; the admin key sees rows per tenant."""
    tenant_id, issued = new_tenant_with_key(host.base_url)
    _run(host, issued["key"], "Hello")

    with host.client(issued["key"]) as client:
        refused = client.get("/platform/usage")
    with admin(host.base_url) as client:
        everyone = client.get("/platform/usage").json()

    assert_problem(refused, 403)
    assert (tenant_id, "triage", 1) in {
        (row["tenant_id"], row["agent"], row["runs"]) for row in everyone["rows"]
    }
