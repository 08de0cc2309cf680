"""A tenant's retention and tool approval policy through the platform admin API, and their effect.

One dev host per backend (SQLite, and Postgres when DATABASE_URL is set) with the admin key;
every test makes its own tenants. Retention takes effect when `purge_retention` runs: the tests
run its per-tenant step in this process, on the host's database, at a chosen moment. The tool
policy takes effect on the next gated tool call: billing's `issue_refund` (a spend tool) pauses
for a reviewer unless the tenant's policy waives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from aca_jobs.purge_retention import purge_tenant
from shared.db.models import utcnow
from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import (
    backend_of,
    host_database_url,
    refunds_of,
    run_json,
    start_paused_run,
    use_host_database,
)
from tests.e2e.problems import assert_problem
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

pytestmark = pytest.mark.e2e

RETENTION_NULLS: dict[str, int | None] = {
    "threads_days": None,
    "runs_days": None,
    "run_events_days": None,
    "store_days": None,
}
# The dev host's defaults (ASCENT_RETENTION_DAYS_*, ASCENT_AUTO_APPROVE_TOOLS).
DEFAULT_RETENTION = {"threads_days": 90, "runs_days": 90, "run_events_days": 30, "store_days": 0}
DEFAULT_AUTO_APPROVE = ["remember"]


@pytest.fixture(scope="module", params=BACKENDS)
def settings_host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host with the platform admin key."""
    url = POSTGRES_URL if request.param == "postgres" else None
    host = start_devhost(
        tmp_path_factory.mktemp("tenant-settings"),
        database_url=url,
        extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY},
    )
    yield host
    host.stop()


@pytest.fixture
def admin_client(settings_host: DevHost) -> Iterator[httpx.Client]:
    """A platform admin client of the module's host."""
    with admin(settings_host.base_url) as client:
        yield client


@pytest.fixture
def tenant(settings_host: DevHost) -> tuple[str, str]:
    """A new tenant on the host and its API key: (tenant id, key)."""
    tenant_id, issued = new_tenant_with_key(settings_host.base_url)
    return tenant_id, str(issued["key"])


# --- retention -------------------------------------------------------------------------------


def test_retention_round_trips(admin_client: httpx.Client, tenant: tuple[str, str]) -> None:
    """GET shows the overrides PUT stored (null = default) and the days they amount to."""
    tenant_id, _ = tenant
    values = {**RETENTION_NULLS, "threads_days": 7, "store_days": 0}
    put = admin_client.put(f"/platform/tenants/{tenant_id}/retention", json=values)
    got = admin_client.get(f"/platform/tenants/{tenant_id}/retention")
    assert put.status_code == 200, put.text
    assert (
        got.json()
        == put.json()
        == {
            "tenant_id": tenant_id,
            "overrides": values,
            "effective": {**DEFAULT_RETENTION, "threads_days": 7, "store_days": 0},
        }
    )


def test_retention_null_restores_the_default(
    admin_client: httpx.Client, tenant: tuple[str, str]
) -> None:
    """Resetting every override to null brings back the deployment's retention."""
    tenant_id, _ = tenant
    path = f"/platform/tenants/{tenant_id}/retention"
    admin_client.put(path, json={**RETENTION_NULLS, "runs_days": 3})
    reset = admin_client.put(path, json=RETENTION_NULLS)
    assert reset.status_code == 200, reset.text
    assert reset.json()["effective"] == DEFAULT_RETENTION


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"threads_days": -1}, id="negative"),
        pytest.param({"threads_days": 36_501}, id="over-100-years"),
        pytest.param({"threads_days": "7"}, id="string"),
        pytest.param({"keep": 7}, id="unknown-field"),
    ],
)
def test_invalid_retention_is_422(
    admin_client: httpx.Client, tenant: tuple[str, str], change: dict[str, Any]
) -> None:
    """Days outside 0..36500, a non-integer or an unknown field is a 422 problem; nothing is
    stored."""
    tenant_id, _ = tenant
    path = f"/platform/tenants/{tenant_id}/retention"
    response = admin_client.put(path, json={**RETENTION_NULLS, **change})
    assert_problem(response, 422, "validation-failed")
    assert admin_client.get(path).json()["overrides"] == RETENTION_NULLS


@pytest.fixture
def purge(
    settings_host: DevHost, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, datetime], dict[str, int]]:
    """Run purge_retention's step for one tenant, in this process, on the host's database."""
    use_host_database(monkeypatch, settings_host, backend_of(request, "settings_host"))

    def at(tenant_id: str, moment: datetime) -> dict[str, int]:
        from shared.db.engine import get_engine

        async def once() -> dict[str, int]:
            try:
                return await purge_tenant(tenant_id, now=moment)
            finally:
                await get_engine().dispose()

        return asyncio.run(once())

    return at


def test_retention_override_is_applied_by_the_purge_job(
    settings_host: DevHost,
    admin_client: httpx.Client,
    purge: Callable[[str, datetime], dict[str, int]],
) -> None:
    """Two days on, a tenant keeping threads 1 day loses its thread; one on the default keeps it."""
    short, short_key = new_tenant_with_key(settings_host.base_url)
    default, default_key = new_tenant_with_key(settings_host.base_url)
    keep_one_day = {**RETENTION_NULLS, "threads_days": 1}
    put = admin_client.put(f"/platform/tenants/{short}/retention", json=keep_one_day)
    assert put.status_code == 200, put.text
    threads = {}
    for tenant_id, issued in ((short, short_key), (default, default_key)):
        with settings_host.client(issued["key"]) as client:
            created = client.post("/threads", json={})
            assert created.status_code == 200, created.text
            threads[tenant_id] = created.json()["thread_id"]
    for tenant_id in (short, default):
        purge(tenant_id, utcnow() + timedelta(days=2))
    statuses = {}
    for tenant_id, issued in ((short, short_key), (default, default_key)):
        with settings_host.client(issued["key"]) as client:
            statuses[tenant_id] = client.get(f"/threads/{threads[tenant_id]}").status_code
    assert statuses == {short: 404, default: 200}


# --- tool approval policy --------------------------------------------------------------------


def test_tool_policy_defaults_to_the_deployment_setting(
    admin_client: httpx.Client, tenant: tuple[str, str]
) -> None:
    """A tenant without a policy follows ASCENT_AUTO_APPROVE_TOOLS (null, effective default)."""
    tenant_id, _ = tenant
    shown = admin_client.get(f"/platform/tenants/{tenant_id}/tool-policy")
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "tenant_id": tenant_id,
        "auto_approve": None,
        "effective": DEFAULT_AUTO_APPROVE,
    }


def test_tool_policy_round_trips(admin_client: httpx.Client, tenant: tuple[str, str]) -> None:
    """A PUT list (duplicates dropped) replaces the default; GET shows it."""
    tenant_id, _ = tenant
    path = f"/platform/tenants/{tenant_id}/tool-policy"
    put = admin_client.put(path, json={"auto_approve": ["issue_refund", "issue_refund"]})
    got = admin_client.get(path)
    assert put.status_code == 200, put.text
    assert (
        got.json()
        == put.json()
        == {
            "tenant_id": tenant_id,
            "auto_approve": ["issue_refund"],
            "effective": ["issue_refund"],
        }
    )


def test_empty_tool_policy_waives_nothing(
    admin_client: httpx.Client, tenant: tuple[str, str]
) -> None:
    """An empty list is a policy of its own: even the default's `remember` needs approval."""
    tenant_id, _ = tenant
    put = admin_client.put(f"/platform/tenants/{tenant_id}/tool-policy", json={"auto_approve": []})
    assert put.status_code == 200, put.text
    assert (put.json()["auto_approve"], put.json()["effective"]) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"auto_approve": ["wire_money"]}, id="unknown-tool"),
        pytest.param({"auto_approve": ["calculate"]}, id="read-tool"),
        pytest.param({"auto_approve": "issue_refund"}, id="not-a-list"),
        pytest.param({"auto_approve": [], "always": True}, id="unknown-field"),
        pytest.param({}, id="missing-field"),
    ],
)
def test_invalid_tool_policy_is_422(
    admin_client: httpx.Client, tenant: tuple[str, str], body: dict[str, Any]
) -> None:
    """Only write and spend tools of the catalog can be waived; anything else is a 422 problem
    and the policy is unchanged."""
    tenant_id, _ = tenant
    path = f"/platform/tenants/{tenant_id}/tool-policy"
    response = admin_client.put(path, json=body)
    assert_problem(response, 422, "validation-failed")
    assert admin_client.get(path).json()["auto_approve"] is None


def test_waived_spend_tool_runs_without_review(
    settings_host: DevHost,
    admin_client: httpx.Client,
    tenant: tuple[str, str],
    request: pytest.FixtureRequest,
) -> None:
    """With issue_refund in the tenant's policy, a refund run succeeds without pausing."""
    tenant_id, key = tenant
    put = admin_client.put(
        f"/platform/tenants/{tenant_id}/tool-policy", json={"auto_approve": ["issue_refund"]}
    )
    assert put.status_code == 200, put.text
    with settings_host.client(key) as client:
        run = start_paused_run(client)
        ended = run_json(client, run["run_id"])
        pending = client.get("/reviews").json()
    url = host_database_url(settings_host, backend_of(request, "settings_host"))
    assert (ended["status"], pending, refunds_of(url, run["run_id"])) == ("success", [], 1)


def test_resetting_the_policy_makes_the_tool_pause_again(
    settings_host: DevHost, admin_client: httpx.Client, tenant: tuple[str, str]
) -> None:
    """After the policy is reset to null, issue_refund pauses for a reviewer again."""
    tenant_id, key = tenant
    path = f"/platform/tenants/{tenant_id}/tool-policy"
    admin_client.put(path, json={"auto_approve": ["issue_refund"]})
    reset = admin_client.put(path, json={"auto_approve": None})
    assert reset.status_code == 200, reset.text
    with settings_host.client(key) as client:
        run = start_paused_run(client)
        assert run_json(client, run["run_id"])["status"] == "interrupted"


# --- data policy -----------------------------------------------------------------------------


def test_a_tenant_pattern_is_redacted_from_every_stored_form(
    settings_host: DevHost, admin_client: httpx.Client, tenant: tuple[str, str]
) -> None:
    """A tenant's own pattern, with action `redact`, is replaced in the stored run and history
    (the admin API round-trips the policy and names the rules in force)."""
    tenant_id, key = tenant
    path = f"/platform/tenants/{tenant_id}/data-policy"
    policy = {"action": "redact", "patterns": [{"name": "order_no", "regex": r"ORD-\d{6}"}]}
    saved = admin_client.put(path, json=policy)
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules"] == ["no_card_numbers", "order_no"]
    assert admin_client.get(path).json() == saved.json()
    with settings_host.client(key) as client:
        run = client.post("/agents/assistant/runs", json={"input": "where is ORD-123456?"})
        assert run.status_code == 200, run.text
        stored = client.get(f"/runs/{run.json()['run_id']}").text
        items = client.get(f"/threads/{run.json()['thread_id']}/messages").text
    assert "ORD-123456" not in stored + items
    assert "[REDACTED:order_no]" in items


def test_an_invalid_pattern_is_refused(admin_client: httpx.Client, tenant: tuple[str, str]) -> None:
    """A pattern that does not compile is a 422 naming the field."""
    tenant_id, _ = tenant
    path = f"/platform/tenants/{tenant_id}/data-policy"
    for regex in ("(unclosed", "[a-"):
        body = {"action": "refuse", "patterns": [{"name": "bad", "regex": regex}]}
        problem = assert_problem(admin_client.put(path, json=body), 422, "validation-failed")
        assert problem["errors"][0]["loc"][:3] == ["patterns", 0, "regex"]  # type: ignore[index]


# --- shared answers of the settings endpoints -------------------------------------------------

SETTINGS_PATHS = [
    pytest.param("retention", RETENTION_NULLS, id="retention"),
    pytest.param("tool-policy", {"auto_approve": None}, id="tool-policy"),
    pytest.param("data-policy", {"action": None, "patterns": []}, id="data-policy"),
]


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize(("name", "body"), SETTINGS_PATHS)
def test_settings_of_an_unknown_tenant_are_404(
    admin_client: httpx.Client, method: str, name: str, body: dict[str, Any]
) -> None:
    """Reading or setting a setting of a tenant that does not exist is a 404 problem."""
    response = admin_client.request(method, f"/platform/tenants/no-such-tenant/{name}", json=body)
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(("name", "body"), SETTINGS_PATHS)
def test_tenant_key_cannot_change_settings(
    settings_host: DevHost, tenant: tuple[str, str], name: str, body: dict[str, Any]
) -> None:
    """A tenant's own API key may not change its settings: 403 problem."""
    tenant_id, key = tenant
    with admin(settings_host.base_url, key=key) as client:
        response = client.put(f"/platform/tenants/{tenant_id}/{name}", json=body)
    assert_problem(response, 403, "forbidden")
