"""The reviews' audit trail, tenant isolation of reviews, and cancelling a run that waits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.conftest import DevHost
from tests.e2e.hitl_helpers import (
    backend_of,
    decide,
    host_database_url,
    new_tenant_key,
    pending_review,
    refunds_of,
    run_json,
    start_paused_run,
    thread_runs_to,
)
from tests.e2e.protocol_helpers import wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devhost: DevHost) -> Iterator[httpx.Client]:
    """An authenticated client of the module's dev host."""
    with devhost.client() as c:
        yield c


@pytest.fixture
def other_client(devhost: DevHost, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of a second tenant, inserted straight into the host's database."""
    key = new_tenant_key(host_database_url(devhost, backend_of(request)))
    with devhost.client(key) as c:
        yield c


def test_audit_lists_who_when_what_and_comment(client: httpx.Client) -> None:
    """The trail holds the system's request, then the reviewer's approval with its comment."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    decide(client, review_id, "approve", reviewer="ops@example.com", comment="customer verified")
    audit = client.get(f"/reviews/{review_id}/audit")
    assert audit.status_code == 200, audit.text
    trail = audit.json()
    assert [(a["action"], a["actor"], a["comment"]) for a in trail] == [
        ("requested", "system", None),
        ("approved", "ops@example.com", "customer verified"),
    ]
    assert trail[0]["details"] == {"tool": "issue_refund", "arguments": {"amount": 40.0}}
    moments = [datetime.fromisoformat(a["at"]) for a in trail]
    assert moments == sorted(moments)


def test_reviewer_defaults_to_the_callers_identity(client: httpx.Client) -> None:
    """Without a reviewer name the decision is attributed to the caller's user or key."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    decided = decide(client, review_id, "reject")
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"]
    assert (
        client.get(f"/reviews/{review_id}/audit").json()[-1]["actor"]
        == (decided.json()["decided_by"])
    )


def test_other_tenant_cannot_read_a_review(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    """Another tenant's GET of the review and of its audit trail are 404; its list is empty."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    assert other_client.get(f"/reviews/{review_id}").status_code == 404
    assert other_client.get(f"/reviews/{review_id}/audit").status_code == 404
    assert other_client.get("/reviews").json() == []


def test_other_tenant_cannot_decide_a_review(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    """Another tenant's decision is 404 and leaves the review pending and the run paused."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    assert decide(other_client, review_id, "approve").status_code == 404
    assert client.get(f"/reviews/{review_id}").json()["status"] == "pending"
    assert run_json(client, run["run_id"])["status"] == "interrupted"


def test_review_shows_the_conversation_context(client: httpx.Client) -> None:
    """GET /reviews/{id} carries the thread's recent messages, the customer's request included."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    context = client.get(f"/reviews/{review_id}").json()["context"]["messages"]
    assert any(m.get("content") == "Please issue a refund of 40" for m in context)


def test_cancelling_a_waiting_run_ends_it_and_closes_its_review(
    client: httpx.Client, devhost: DevHost, request: pytest.FixtureRequest
) -> None:
    """Cancel ends the paused run (interrupted, cancelled); its review is closed, no refund."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    cancelled = client.post(f"/runs/{run['run_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "interrupted",
        "cancelled",
    )
    assert client.get(f"/reviews/{review_id}").json()["status"] == "cancelled"
    assert decide(client, review_id, "approve").status_code == 409
    assert refunds_of(host_database_url(devhost, backend_of(request)), run["run_id"]) == 0


def test_thread_takes_a_new_run_after_a_cancelled_review(client: httpx.Client) -> None:
    """The cancelled run releases its thread, whose next run completes."""
    run = start_paused_run(client)
    pending_review(client, run["run_id"])
    assert client.post(f"/runs/{run['run_id']}/cancel").status_code == 200
    after = thread_runs_to(client, run["thread_id"], "What is your refund policy?")
    assert wait_status(client, after["run_id"], "success", "error") == "success"
