"""Reviewer decisions over HTTP: reject, a second decision, racing reviewers, "always approve".

One module, so the dev host starts once per backend (SQLite, and Postgres when DATABASE_URL is
set). Every run is a billing run asking for a refund, which pauses on `issue_refund`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import DevHost
from tests.e2e.hitl_helpers import (
    backend_of,
    decide,
    host_database_url,
    pending_review,
    refunds_of,
    run_json,
    start_paused_run,
    thread_messages,
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
def db_url(devhost: DevHost, request: pytest.FixtureRequest) -> str:
    """The module's dev host database, for counting refunds."""
    return host_database_url(devhost, backend_of(request))


def test_rejection_reaches_the_agent_which_says_so(client: httpx.Client, db_url: str) -> None:
    """A rejected refund is not issued; the agent reads the rejection and tells the customer."""
    run = start_paused_run(client)
    review = pending_review(client, run["run_id"])
    rejected = decide(client, review["review_id"], "reject", comment="Over the monthly limit")
    assert rejected.status_code == 200, rejected.text
    assert wait_status(client, run["run_id"], "success", "error") == "success"
    output = run_json(client, run["run_id"])["output"]
    assert "rejected" in output and "not approved" in output
    assert "Over the monthly limit" in output
    assert refunds_of(db_url, run["run_id"]) == 0


def test_rejected_call_gets_the_rejection_as_its_output(client: httpx.Client) -> None:
    """The thread holds the paused call once, answered by the rejection, not a refund."""
    run = start_paused_run(client)
    review = pending_review(client, run["run_id"])
    assert decide(client, review["review_id"], "reject").status_code == 200
    wait_status(client, run["run_id"], "success", "error")
    items = thread_messages(client, run["thread_id"])
    calls = [i for i in items if i.get("type") == "function_call"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert [c["name"] for c in calls] == ["issue_refund"]
    assert len(outputs) == 1 and "rejected" in str(outputs[0]["output"])


def test_second_decision_is_409_and_changes_nothing(client: httpx.Client, db_url: str) -> None:
    """After an approval, a reject is 409; the review stays approved and one refund exists."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    first = decide(client, review_id, "approve", reviewer="first@example.com", comment="ok")
    assert first.status_code == 200, first.text
    second = decide(client, review_id, "reject", reviewer="second@example.com", comment="no")
    assert second.status_code == 409, second.text
    assert wait_status(client, run["run_id"], "success", "error") == "success"
    after = client.get(f"/reviews/{review_id}").json()
    assert (after["status"], after["decided_by"], after["comment"]) == (
        "approved",
        "first@example.com",
        "ok",
    )
    assert refunds_of(db_url, run["run_id"]) == 1


def test_repeating_the_same_decision_is_also_409(client: httpx.Client) -> None:
    """Decisions are final, not upserts: approving an approved review again is 409."""
    run = start_paused_run(client)
    review_id = pending_review(client, run["run_id"])["review_id"]
    assert decide(client, review_id, "approve").status_code == 200
    assert decide(client, review_id, "approve").status_code == 409


def test_racing_reviewers_have_exactly_one_winner(devhost: DevHost, db_url: str) -> None:
    """Two reviewers POST at once: one 200, one 409; the winner's decision is the recorded one."""
    with devhost.client() as setup:
        run = start_paused_run(setup)
        review_id = pending_review(setup, run["run_id"])["review_id"]
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def reviewer(name: str, decision: str) -> None:
        with devhost.client() as own:
            barrier.wait()
            answer = decide(own, review_id, decision, reviewer=name)
            results[name] = answer.status_code

    racers = [
        threading.Thread(target=reviewer, args=("alice@example.com", "approve")),
        threading.Thread(target=reviewer, args=("bob@example.com", "reject")),
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(results.values()) == [200, 409], results
    winner = next(name for name, code in results.items() if code == 200)
    with devhost.client() as check:
        assert wait_status(check, run["run_id"], "success", "error") == "success"
        review = check.get(f"/reviews/{review_id}").json()
        audit = check.get(f"/reviews/{review_id}/audit").json()
    assert review["decided_by"] == winner
    assert [a["actor"] for a in audit if a["action"] != "requested"] == [winner]
    expected = 1 if winner == "alice@example.com" else 0
    assert refunds_of(db_url, run["run_id"]) == expected


def test_always_approve_skips_the_next_call_on_the_thread(
    client: httpx.Client, db_url: str
) -> None:
    """After "always approve this tool for this thread", the next refund there does not pause."""
    first = start_paused_run(client)
    review = pending_review(client, first["run_id"])
    approved = decide(client, review["review_id"], "approve", always_approve_tool_for_thread=True)
    assert approved.status_code == 200, approved.text
    assert approved.json()["always_approve_tool_for_thread"] is True
    assert wait_status(client, first["run_id"], "success", "error") == "success"
    second = thread_runs_to(client, first["thread_id"], "Please issue a refund of 25")
    assert run_json(client, second["run_id"])["status"] == "success"
    assert refunds_of(db_url, second["run_id"]) == 1
    listed = client.get("/reviews", params={"status": "pending", "limit": 1000}).json()
    assert all(r["run_id"] != second["run_id"] for r in listed)


def test_always_approve_does_not_reach_other_threads(client: httpx.Client) -> None:
    """The standing approval is per thread: the same tool on a new thread still pauses."""
    first = start_paused_run(client)
    review = pending_review(client, first["run_id"])
    decide(client, review["review_id"], "approve", always_approve_tool_for_thread=True)
    wait_status(client, first["run_id"], "success", "error")
    other = start_paused_run(client)
    assert run_json(client, other["run_id"])["status"] == "interrupted"
