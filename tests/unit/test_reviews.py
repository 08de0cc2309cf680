"""Pure parts of human-in-the-loop reviews: resume values, rejection text, guardrail signals."""

from __future__ import annotations

import pytest

from examples.billing import promised_refunds
from shared.core.errors import Conflict, ValidationFailed
from shared.db.review_models import Review
from shared.runs.reviews import (
    _decision,
    _decisions,
    _parse_args,
    holds_for_review,
    rejection_message,
)
from shared.security.tool_approval import requires_approval

A, B = "review-a", "review-b"


def test_plain_approve_decides_every_pending_review() -> None:
    """`resume: "approve"` approves all pending reviews of the run."""
    decided = _decisions("approve", [A, B])
    assert {k: v.decision for k, v in decided.items()} == {A: "approve", B: "approve"}


def test_decision_object_carries_reviewer_and_comment() -> None:
    """`{"decision", "reviewer", "comment"}` keeps the reviewer identity and the comment."""
    one = _decisions({"decision": "reject", "reviewer": "ops", "comment": "no"}, [A])[A]
    assert (one.decision, one.reviewer, one.comment) == ("reject", "ops", "no")


def test_map_by_interrupt_id_decides_each_one() -> None:
    """`{id: value}` decides only the named reviews, each its own way."""
    decided = _decisions({A: "approve", B: {"decision": "reject"}}, [A, B])
    assert {k: v.decision for k, v in decided.items()} == {A: "approve", B: "reject"}


def test_agent_inbox_type_is_understood() -> None:
    """LangGraph agent-inbox's `{"type": "accept"}` means approve, anything else reject."""
    assert _decision({"type": "accept"}).decision == "approve"
    assert _decision({"type": "ignore"}).decision == "reject"


def test_booleans_and_past_tense_are_understood() -> None:
    """`true`/`"approved"` approve, `false`/`"rejected"` reject."""
    assert [_decision(v).decision for v in (True, "approved", False, "rejected")] == [
        "approve",
        "approve",
        "reject",
        "reject",
    ]


def test_unknown_interrupt_id_is_a_validation_error() -> None:
    """A map naming no pending review is 422, not a silent no-op."""
    with pytest.raises(ValidationFailed):
        _decisions({"someone-else": "approve"}, [A])


def test_nothing_pending_is_a_conflict() -> None:
    """A resume with no pending review is 409."""
    with pytest.raises(Conflict):
        _decisions("approve", [])


def test_unknown_decision_is_a_validation_error() -> None:
    """A decision other than approve/reject is 422."""
    with pytest.raises(ValidationFailed):
        _decision({"decision": "maybe"})


def test_rejection_message_names_the_tool_and_the_comment() -> None:
    """The agent reads which call was rejected, the reviewer's comment, and not to retry."""
    review = Review(
        tenant_id="t",
        run_id="r",
        agent="billing",
        kind="tool",
        comment="limit reached",
        expires_at=None,  # type: ignore[arg-type]
    )
    text = rejection_message(review, "issue_refund")
    assert "issue_refund" in text and "limit reached" in text and "Do not retry" in text


def test_only_review_tripwires_hold_the_answer() -> None:
    """An output guardrail holds for review only with `output_info["review"] is True`."""
    assert holds_for_review({"review": True, "reason": "x"})
    assert not holds_for_review({"review": "yes"})
    assert not holds_for_review(None)


def test_promised_refunds_are_read_from_the_answer() -> None:
    """The guardrail reads every promised amount, thousands separators included."""
    text = "Refund of 40 now; refundable for 1,200.00 later; refunded $75."
    assert promised_refunds(text) == [40.0, 1200.0, 75.0]


def test_arguments_are_parsed_from_json_text() -> None:
    """Tool arguments are stored as an object; text that is not JSON is kept raw."""
    assert _parse_args('{"amount": 40}') == {"amount": 40}
    assert _parse_args("not json") == {"raw": "not json"}
    assert _parse_args("[1]") == {"value": [1]}


async def test_read_tools_never_need_approval() -> None:
    """A read tool (refund_quote) never pauses, whatever the context."""
    assert await requires_approval(None, "refund_quote") is False


async def test_spend_tool_needs_approval_without_a_tenant_policy() -> None:
    """A spend tool (issue_refund) pauses by default; `remember` is auto-approved by default."""
    assert await requires_approval(None, "issue_refund") is True
    assert await requires_approval(None, "remember") is False
