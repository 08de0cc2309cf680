"""Per-tenant budgets over HTTP: the admin API sets them, two dev hosts enforce them.

Two dev host processes share one database and the real Redis (counters and the limits cache),
with the deployment defaults at 4 requests per minute per tenant and no per-key budget. Every
test uses new tenants, so its counters start at zero. Windows are fixed minutes: a burst of
2 * limit + 2 requests meets a 429 even when it straddles a minute boundary, and a burst of at
most `limit` never does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.problems import assert_problem
from tests.e2e.protocol_helpers import poll
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
DEFAULT_PER_MINUTE = 4
HOST_ENV = {
    "ASCENT_ADMIN_KEY": ADMIN_KEY,
    "REDIS_URL": REDIS_URL,
    "ASCENT_RATE_LIMIT_PER_MINUTE": str(DEFAULT_PER_MINUTE),
    "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
}
NULLS: dict[str, int | None] = {
    "requests_per_minute": None,
    "key_requests_per_minute": None,
    "concurrent_runs": None,
    "tokens_per_day": None,
}


@pytest.fixture(scope="module")
def redis_up() -> None:
    """Skip, saying how to fix it, when the real Redis does not answer."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {REDIS_URL} (start redis-server)")


@pytest.fixture(scope="module", params=BACKENDS)
def hosts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_up: None
) -> Iterator[tuple[DevHost, DevHost]]:
    """Two dev hosts on one data dir / database and one Redis, both with the admin key."""
    url = POSTGRES_URL if request.param == "postgres" else None
    data_dir: Path = tmp_path_factory.mktemp("limits")
    first = start_devhost(data_dir, database_url=url, extra_env=HOST_ENV)
    try:
        second = start_devhost(
            data_dir,
            database_url=url,
            extra_env={**HOST_ENV, "ASCENT_DEV_API_KEY": first.api_key},
        )
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _put_limits(host: DevHost, tenant_id: str, **values: int | None) -> dict[str, Any]:
    """Set a tenant's budgets through the admin API (unmentioned ones: null); return the body."""
    with admin(host.base_url) as client:
        response = client.put(f"/platform/tenants/{tenant_id}/limits", json={**NULLS, **values})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _burst(host: DevHost, key: str, n: int) -> list[httpx.Response]:
    """Send n authenticated requests to one host; return the responses."""
    with host.client(key) as client:
        return [client.get("/agents") for _ in range(n)]


def _statuses(responses: list[httpx.Response]) -> set[int]:
    return {r.status_code for r in responses}


# --- enforcement -----------------------------------------------------------------------------


def test_lower_override_gets_429_with_retry_after(hosts: tuple[DevHost, DevHost]) -> None:
    """A tenant allowed 2 requests per minute gets problem+json 429s with Retry-After."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    _put_limits(first, tenant_id, requests_per_minute=2)
    responses = _burst(first, issued["key"], 6)
    refused = [r for r in responses if r.status_code == 429]
    assert refused and _statuses(responses) <= {200, 429}
    assert_problem(refused[0], 429, "rate-limited")
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)


def test_tenant_on_the_default_keeps_its_budget(hosts: tuple[DevHost, DevHost]) -> None:
    """While a tenant with a lower override is refused, a tenant on the default is not."""
    first, _ = hosts
    limited, limited_key = new_tenant_with_key(first.base_url)
    _, default_key = new_tenant_with_key(first.base_url)
    _put_limits(first, limited, requests_per_minute=1)
    assert 429 in _statuses(_burst(first, limited_key["key"], 4))
    assert _statuses(_burst(first, default_key["key"], DEFAULT_PER_MINUTE)) == {200}


def test_zero_override_turns_the_budget_off(hosts: tuple[DevHost, DevHost]) -> None:
    """requests_per_minute=0 lets the tenant past the default's 4 requests per minute."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    _put_limits(first, tenant_id, requests_per_minute=0)
    assert _statuses(_burst(first, issued["key"], 2 * DEFAULT_PER_MINUTE + 2)) == {200}


def test_resetting_to_null_restores_the_default(hosts: tuple[DevHost, DevHost]) -> None:
    """After an override of 0 is reset to null, the default 4 per minute applies again."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    _put_limits(first, tenant_id, requests_per_minute=0)
    _put_limits(first, tenant_id, requests_per_minute=None)
    assert 429 in _statuses(_burst(first, issued["key"], 2 * DEFAULT_PER_MINUTE + 2))


def test_change_applies_at_once_on_the_host_that_served_it(
    hosts: tuple[DevHost, DevHost],
) -> None:
    """A host that has the default cached enforces a new, lower budget on the next requests."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    assert _statuses(_burst(first, issued["key"], 1)) == {200}
    _put_limits(first, tenant_id, requests_per_minute=1)
    assert 429 in _statuses(_burst(first, issued["key"], 3))


def test_change_reaches_the_other_host_within_the_bound(hosts: tuple[DevHost, DevHost]) -> None:
    """A per-key budget set through host one is enforced by host two, which had cached the
    old (unlimited) budgets, within the documented bound (LOCAL_TTL_SECONDS, 5 s)."""
    first, second = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    _put_limits(first, tenant_id, requests_per_minute=0)
    assert _statuses(_burst(second, issued["key"], 1)) == {200}  # host two caches "no limit"
    _put_limits(first, tenant_id, requests_per_minute=0, key_requests_per_minute=1)
    with second.client(issued["key"]) as client:

        def refused() -> httpx.Response | None:
            response = client.get("/agents")
            if response.status_code == 429:
                return response
            assert response.status_code == 200, response.text
            time.sleep(0.1)  # pacing the polls only; the poll deadline is the failure guard
            return None

        response: httpx.Response = poll(refused, "host two to enforce the new key budget")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_tokens_per_day_override_refuses_the_next_run(hosts: tuple[DevHost, DevHost]) -> None:
    """With tokens_per_day=1, the run that spends the budget succeeds and the next is 429."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    _put_limits(first, tenant_id, requests_per_minute=0, tokens_per_day=1)
    with first.client(issued["key"]) as client:
        spent = client.post("/agents/assistant/runs", json={"input": "what is 2 * 21?"})
        refused = client.post("/agents/assistant/runs", json={"input": "what is 2 * 21?"})
    assert spent.status_code == 200, spent.text
    assert_problem(refused, 429, "rate-limited")
    assert int(refused.headers["Retry-After"]) >= 1


# --- the admin endpoints ---------------------------------------------------------------------


def test_limits_round_trip(hosts: tuple[DevHost, DevHost]) -> None:
    """GET shows what PUT stored (null = default) next to the budgets enforced now."""
    first, second = hosts
    tenant_id, _ = new_tenant_with_key(first.base_url)
    values = {**NULLS, "requests_per_minute": 7, "concurrent_runs": 0}
    _put_limits(first, tenant_id, **values)
    with admin(second.base_url) as client:
        shown = client.get(f"/platform/tenants/{tenant_id}/limits")
    assert shown.status_code == 200, shown.text
    assert shown.json()["overrides"] == values
    assert shown.json()["effective"] == {
        "requests_per_minute": 7,
        "key_requests_per_minute": 0,
        "concurrent_runs": 0,
        "tokens_per_day": 2_000_000,
    }


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"requests_per_minute": -1}, id="negative"),
        pytest.param({"requests_per_minute": "5"}, id="string"),
        pytest.param({"requests_per_minute": 1.5}, id="float"),
        pytest.param({"requests_per_minute": True}, id="boolean"),
        pytest.param({"requests_per_minute": 2**31}, id="over-32-bits"),
        pytest.param({"burst": 5}, id="unknown-field"),
    ],
)
def test_invalid_limits_are_422(hosts: tuple[DevHost, DevHost], change: dict[str, Any]) -> None:
    """A budget that is not an integer from 0 to 2^31-1, or an unknown field, is a 422 problem
    naming the field, and nothing is stored."""
    first, _ = hosts
    tenant_id, _ = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        response = client.put(f"/platform/tenants/{tenant_id}/limits", json={**NULLS, **change})
        after = client.get(f"/platform/tenants/{tenant_id}/limits").json()
    body = assert_problem(response, 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == [[next(iter(change))]]
    assert after["overrides"] == NULLS


def test_missing_limit_is_422(hosts: tuple[DevHost, DevHost]) -> None:
    """Every budget must be given (null for the default): a PUT never resets one by omission."""
    first, _ = hosts
    tenant_id, _ = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        response = client.put(
            f"/platform/tenants/{tenant_id}/limits", json={"requests_per_minute": 5}
        )
    assert_problem(response, 422, "validation-failed")


def test_malformed_limits_body_is_400(hosts: tuple[DevHost, DevHost]) -> None:
    """A body that is not JSON is a 400 problem."""
    first, _ = hosts
    tenant_id, _ = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        response = client.put(f"/platform/tenants/{tenant_id}/limits", content=b"{not json")
    assert_problem(response, 400, "bad-request")


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_limits_of_an_unknown_tenant_are_404(hosts: tuple[DevHost, DevHost], method: str) -> None:
    """Reading or setting the budgets of a tenant that does not exist is a 404 problem."""
    first, _ = hosts
    with admin(first.base_url) as client:
        response = client.request(method, "/platform/tenants/no-such-tenant/limits", json=NULLS)
    assert_problem(response, 404, "not-found")


def test_tenant_key_cannot_set_limits(hosts: tuple[DevHost, DevHost]) -> None:
    """A tenant's own API key may not change its budgets (403), and nothing is stored."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    with admin(first.base_url, key=issued["key"]) as client:
        response = client.put(
            f"/platform/tenants/{tenant_id}/limits", json={**NULLS, "requests_per_minute": 0}
        )
    with admin(first.base_url) as client:
        after = client.get(f"/platform/tenants/{tenant_id}/limits").json()
    assert_problem(response, 403, "forbidden")
    assert after["overrides"] == NULLS


def test_limits_without_credentials_are_401(hosts: tuple[DevHost, DevHost]) -> None:
    """The limits endpoint without an Authorization header is a 401 problem."""
    first, _ = hosts
    tenant_id, _ = new_tenant_with_key(first.base_url)
    response = httpx.get(f"{first.base_url}/platform/tenants/{tenant_id}/limits", timeout=30)
    assert_problem(response, 401, "unauthorized")
