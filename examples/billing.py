"""The billing specialist: refunds, charges and invoices.

Tools: `refund_quote` (read) computes what the policy allows; `issue_refund` (spend) records a
refund in the `refunds` table, so it pauses for a human approval (shared/security/tool_approval.py).
The output guardrail `refund_review` sends an answer that promises a refund above
ASCENT_REFUND_REVIEW_THRESHOLD to a reviewer instead of the user (shared/runs/reviews.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunContextWrapper,
    output_guardrail,
)
from agents.tool_context import ToolContext
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from ascent import serve_agent, tool

# The demo's refunds table belongs to the framework's schema (shared/db/review_models.py), so
# this example reaches into internals; an agent of your own keeps its own storage.
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.review_models import Refund

NAME = "billing"
DESCRIPTION = "Billing specialist for refunds, charges, invoices, payments and subscriptions."
PROMPT = (
    "You are the billing specialist. Quote refunds with the refund_quote tool using the "
    "purchase amount and the days since purchase; explain the policy briefly. Issue a refund "
    "only when the customer asks for it, with the issue_refund tool (a human approves it)."
)
NO_CONTEXT = "Refunds cannot be issued here: the run has no tenant context."
# "refund of 40", "refundable for 1,200.00", "refunded $75": the amounts an answer promises.
_PROMISED = re.compile(r"\brefund(?:able|ed)?\s+(?:of|for)?\s*\$?(\d[\d,]*(?:\.\d+)?)", re.I)

FULL_REFUND_DAYS = 30
HALF_REFUND_DAYS = 90


def refund_amount(amount: float, days_since_purchase: int) -> float:
    """Apply the refund policy: full within 30 days, half within 90, nothing after."""
    if days_since_purchase <= FULL_REFUND_DAYS:
        return round(amount, 2)
    if days_since_purchase <= HALF_REFUND_DAYS:
        return round(amount / 2, 2)
    return 0.0


# Computes a quote only; issuing the refund is the separate `spend` tool below.
@tool(risk="read")
def refund_quote(
    amount: Annotated[float, Field(ge=0, le=1_000_000)],
    days_since_purchase: Annotated[int, Field(ge=0, le=36_500)],
) -> str:
    """Quote the refund for a purchase under the refund policy.

    Args:
        amount: What the customer paid.
        days_since_purchase: Days since the purchase.
    """
    refund = refund_amount(amount, days_since_purchase)
    return (
        f"A purchase of {amount:.2f} made {days_since_purchase} days ago is refundable "
        f"for {refund:.2f} (full refund within {FULL_REFUND_DAYS} days, half within "
        f"{HALF_REFUND_DAYS})."
    )


# Records a refund (moves money): pauses for a reviewer unless the tenant waives it.
@tool(risk="spend")
async def issue_refund(
    ctx: ToolContext[Any],
    amount: Annotated[float, Field(gt=0, le=1_000_000)],
) -> str:
    """Issue a refund of the given amount to the customer.

    Args:
        amount: The amount to refund.
    """
    tenant = getattr(ctx.context, "tenant_id", None)
    if not isinstance(tenant, str) or not tenant:
        return NO_CONTEXT
    run_id = getattr(ctx.context, "run_id", None)
    refund = Refund(
        tenant_id=tenant,
        user_id=getattr(ctx.context, "user_id", None),
        thread_id=getattr(ctx.context, "thread_id", None),
        run_id=run_id,
        # The idempotency key is the call within its run: a model's call ids are not unique
        # across runs (the offline model derives them from the conversation).
        call_id=f"{run_id}/{ctx.tool_call_id}" if run_id else ctx.tool_call_id,
        amount=round(amount, 2),
    )
    try:
        async with db_session() as db:
            db.add(refund)
            await db.commit()
    except IntegrityError:
        # The (tenant, call id) key: this very call was already recorded; never pay twice.
        return f"Refund of {amount:.2f} was already issued for this request."
    return f"Refund of {amount:.2f} issued (reference {refund.id[:8]})."


def promised_refunds(text: str) -> list[float]:
    """The refund amounts a text promises ("refund of 40", "refundable for 1,200.00")."""
    return [float(m.replace(",", "")) for m in _PROMISED.findall(text)]


@output_guardrail(name="refund_review")
async def refund_review(
    ctx: RunContextWrapper[Any], agent: Agent[Any], output: Any
) -> GuardrailFunctionOutput:
    """Route an answer promising a refund above ASCENT_REFUND_REVIEW_THRESHOLD to a reviewer.

    `output_info["review"]` marks the tripwire as "hold for review" rather than "refuse".
    """
    threshold = get_settings().refund_review_threshold
    over = [a for a in promised_refunds(str(output)) if a > threshold]
    info = {"review": True, "reason": f"promises a refund above {threshold:.2f}"}
    return GuardrailFunctionOutput(
        output_info=info if over else None, tripwire_triggered=bool(over)
    )


def build() -> Agent[Any]:
    """Build the billing agent."""
    return Agent(
        name=NAME,
        handoff_description=DESCRIPTION,
        instructions=PROMPT,
        tools=[refund_quote, issue_refund],
        output_guardrails=[refund_review],
    )


agent = serve_agent(build, name=NAME, description=DESCRIPTION)
