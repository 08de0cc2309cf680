"""The triage agent: routes customers to billing or technical support by handoff."""

from __future__ import annotations

from typing import Any

from agents import Agent
from agents.extensions.handoff_prompt import prompt_with_handoff_instructions

from ascent import no_card_numbers, serve_agent
from examples import billing, tech_support

NAME = "triage"
DESCRIPTION = "Front desk: answers general questions and hands off to billing or tech support."
PROMPT = prompt_with_handoff_instructions(
    "You are the front desk. Hand billing matters (refunds, charges, invoices, payments) to "
    "the billing agent and technical problems (errors, crashes, login, bugs) to tech support. "
    "Answer anything else yourself, briefly."
)


def build() -> Agent[Any]:
    """Build the triage agent with its two specialists."""
    return Agent(
        name=NAME,
        handoff_description=DESCRIPTION,
        instructions=PROMPT,
        handoffs=[billing.build(), tech_support.build()],
        input_guardrails=[no_card_numbers],
    )


agent = serve_agent(build, name=NAME, description=DESCRIPTION)
