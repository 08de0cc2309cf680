"""Output review: billing's `refund_review` guardrail holds a big refund promise for a human.

"Can I get a refund of 5000 after 10 days?" is quoted in full (5000.00, above the default
ASCENT_REFUND_REVIEW_THRESHOLD of 1000), so the answer goes to a reviewer instead of the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.runs.reviews import OUTPUT_REFUSAL
from tests.conftest import DevHost
from tests.e2e.hitl_helpers import (
    BIG_QUOTE,
    decide,
    pending_review,
    run_json,
    start_paused_run,
    thread_messages,
)
from tests.e2e.protocol_helpers import wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(devhost: DevHost) -> Iterator[httpx.Client]:
    """An authenticated client of the module's dev host."""
    with devhost.client() as c:
        yield c


def held(client: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask for the big refund; return the interrupted run and its output review."""
    run = start_paused_run(client, BIG_QUOTE)
    assert run_json(client, run["run_id"])["status"] == "interrupted"
    return run, pending_review(client, run["run_id"])


def assistant_texts(client: httpx.Client, thread_id: str) -> list[str]:
    """The assistant messages of a thread, as text."""
    return [
        str(i["content"] if isinstance(i["content"], str) else i["content"][0]["text"])
        for i in thread_messages(client, thread_id)
        if i.get("role") == "assistant"
    ]


def test_big_refund_promise_goes_to_review(client: httpx.Client) -> None:
    """The answer is held in an `output` review naming the guardrail's reason."""
    _, review = held(client)
    assert (review["kind"], review["tool"]) == ("output", None)
    assert "5000.00" in review["output"]
    assert "above 1000.00" in review["reason"]


def test_held_answer_is_not_in_the_conversation(client: httpx.Client) -> None:
    """While the review is pending the user's thread does not hold the answer."""
    run, review = held(client)
    assert review["output"] not in assistant_texts(client, run["thread_id"])


def test_approval_releases_the_held_answer(client: httpx.Client) -> None:
    """Approved, the run succeeds with exactly the held answer, which joins the thread."""
    run, review = held(client)
    assert decide(client, review["review_id"], "approve").status_code == 200
    assert wait_status(client, run["run_id"], "success", "error") == "success"
    assert run_json(client, run["run_id"])["output"] == review["output"]
    assert assistant_texts(client, run["thread_id"])[-1] == review["output"]


def test_rejection_replaces_the_answer_with_the_refusal(client: httpx.Client) -> None:
    """Rejected, the run succeeds with the refusal; the held answer never reaches the thread."""
    run, review = held(client)
    assert decide(client, review["review_id"], "reject", comment="too generous").status_code == 200
    assert wait_status(client, run["run_id"], "success", "error") == "success"
    assert run_json(client, run["run_id"])["output"] == OUTPUT_REFUSAL
    texts = assistant_texts(client, run["thread_id"])
    assert texts[-1] == OUTPUT_REFUSAL and review["output"] not in texts


def test_small_refund_promise_is_not_held(client: httpx.Client) -> None:
    """A quote under the threshold is answered directly, without a review."""
    created = client.post(
        "/runs", json={"agent_id": "billing", "input": "Refund of 40 after 10 days?"}
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    assert wait_status(client, run_id, "success", "error", "interrupted") == "success"
    assert "40.00" in run_json(client, run_id)["output"]
