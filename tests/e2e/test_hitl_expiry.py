"""Review expiry: `expire_due_reviews` (the `expire_reviews` job) ends a run nobody decided.

The module's dev host requests reviews with a 1-second TTL, and the test calls
`expire_due_reviews(now=<the review's expires_at + 1 s>)` against the host's database, so only
reviews that are due by then (not those of other hosts sharing a Postgres database) expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.runs.reviews import EXPIRED_ERROR, expire_due_reviews
from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import (
    backend_of,
    decide,
    host_database_url,
    pending_review,
    refunds_of,
    run_json,
    start_paused_run,
    thread_runs_to,
    use_host_database,
)
from tests.e2e.protocol_helpers import wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def ttl_host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host whose reviews expire one second after they are requested."""
    url = POSTGRES_URL if request.param == "postgres" else None
    host = start_devhost(
        tmp_path_factory.mktemp("ttl"),
        database_url=url,
        extra_env={"ASCENT_REVIEW_TTL_SECONDS": "1"},
    )
    yield host
    host.stop()


@pytest.fixture
def client(ttl_host: DevHost) -> Iterator[httpx.Client]:
    """An authenticated client of the module's dev host."""
    with ttl_host.client() as c:
        yield c


@pytest.fixture
def expire(
    ttl_host: DevHost, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run the expiry job's work once, in this process, on the host's database, at a moment."""
    use_host_database(monkeypatch, ttl_host, backend_of(request, "ttl_host"))

    def at(moment: datetime) -> int:
        from shared.db.engine import get_engine

        async def once() -> int:
            try:
                return await expire_due_reviews(now=moment)
            finally:
                await get_engine().dispose()

        return asyncio.run(once())

    return at


def expired_run(client: httpx.Client, expire: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pause a refund run and expire its review just after its expiry time; (run, review)."""
    run = start_paused_run(client)
    review = pending_review(client, run["run_id"])
    expire(datetime.fromisoformat(review["expires_at"]) + timedelta(seconds=1))
    wait_status(client, run["run_id"], "error", "success", "interrupted")
    return run, review


def test_expiry_ends_the_run_with_review_expired(client: httpx.Client, expire: Any) -> None:
    """Past its expiry the review is `expired` and its run ends `error`, "review expired"."""
    run, review = expired_run(client, expire)
    ended = run_json(client, run["run_id"])
    assert (ended["status"], ended["error"]) == ("error", EXPIRED_ERROR)
    assert client.get(f"/reviews/{review['review_id']}").json()["status"] == "expired"


def test_expired_tool_never_runs(
    client: httpx.Client, expire: Any, ttl_host: DevHost, request: pytest.FixtureRequest
) -> None:
    """The refund waiting for the expired review is never issued."""
    run, _ = expired_run(client, expire)
    url = host_database_url(ttl_host, backend_of(request, "ttl_host"))
    assert refunds_of(url, run["run_id"]) == 0


def test_late_decision_is_409(client: httpx.Client, expire: Any) -> None:
    """Approving an expired review is 409 and does not revive the run."""
    run, review = expired_run(client, expire)
    late = decide(client, review["review_id"], "approve")
    assert late.status_code == 409, late.text
    assert run_json(client, run["run_id"])["status"] == "error"


def test_expiry_before_the_due_time_leaves_the_review(client: httpx.Client, expire: Any) -> None:
    """A review is not expired before its `expires_at`."""
    run = start_paused_run(client)
    review = pending_review(client, run["run_id"])
    expire(datetime.fromisoformat(review["requested_at"]))
    assert client.get(f"/reviews/{review['review_id']}").json()["status"] == "pending"
    assert run_json(client, run["run_id"])["status"] == "interrupted"


def test_expiry_is_audited(client: httpx.Client, expire: Any) -> None:
    """The audit trail shows the request and the system's expiry."""
    _, review = expired_run(client, expire)
    audit = client.get(f"/reviews/{review['review_id']}/audit").json()
    assert [(a["action"], a["actor"]) for a in audit] == [
        ("requested", "system"),
        ("expired", "system"),
    ]


def test_thread_takes_a_new_run_after_expiry(client: httpx.Client, expire: Any) -> None:
    """The expired run releases its thread, whose next run completes."""
    run, _ = expired_run(client, expire)
    after = thread_runs_to(client, run["thread_id"], "What is your refund policy?")
    assert run_json(client, after["run_id"])["status"] == "success"
