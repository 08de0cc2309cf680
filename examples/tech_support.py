"""The technical-support specialist: explains error codes from a shipped knowledge table."""

from __future__ import annotations

from typing import Annotated, Any

from agents import Agent, RunContextWrapper
from pydantic import Field

from ascent import RunContext, emit_progress, serve_agent, tool

NAME = "tech_support"
DESCRIPTION = (
    "Technical support for errors, crashes, bugs, login problems, outages and installation."
)
PROMPT = (
    "You are technical support. When the user quotes an error code (E followed by three "
    "digits), look it up with lookup_error before answering."
)

# The knowledge base is data, not code: add rows here, no logic changes needed.
ERROR_CODES: dict[str, str] = {
    "E100": "Invalid credentials: reset the password from the sign-in page.",
    "E200": "Session expired: sign in again; sessions last 12 hours.",
    "E300": "Rate limited: wait one minute before retrying.",
    "E404": "Resource not found: check the identifier you used.",
    "E500": "Server error: retry; if it persists, contact support with the request id.",
}


@tool(risk="read")
def lookup_error(
    ctx: RunContextWrapper[RunContext], code: Annotated[str, Field(pattern=r"E\d{3}")]
) -> str:
    """Look up what an error code means and how to fix it.

    Args:
        code: The error code, such as E404.
    """
    # Progress a client sees live with stream_mode="custom" (shared/core/context.py).
    emit_progress(ctx, {"tool": "lookup_error", "code": code, "step": "searching the table"})
    return explain_error(code)


def explain_error(code: str) -> str:
    """The error lookup's answer (shared with the MCP tool server, mcp_tools/)."""
    return f"{code}: {ERROR_CODES.get(code, 'Unknown error code; send us the full message.')}"


def build() -> Agent[Any]:
    """Build the technical-support agent."""
    return Agent(
        name=NAME, handoff_description=DESCRIPTION, instructions=PROMPT, tools=[lookup_error]
    )


agent = serve_agent(build, name=NAME, description=DESCRIPTION)
