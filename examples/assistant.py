"""The general assistant: shows function tools (a safe calculator and a world clock)."""

from __future__ import annotations

import ast
import operator
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import Agent
from pydantic import Field

from ascent import MEMORY_TOOLS, no_card_numbers, serve_agent, tool

NAME = "assistant"
DESCRIPTION = "A helpful assistant that can calculate and tell the time in any time zone."
PROMPT = (
    "You are a concise, helpful assistant. Use the calculate tool for any arithmetic and the "
    "current_time tool for the time in a place; never do arithmetic in your head. Save lasting "
    "facts the user shares with remember, and use recall before answering about them."
)

# An arithmetic expression with at least one operator, e.g. "12 * (3 + 4)".
EXPRESSION_PATTERN = r"\(*\s*-?\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/%^])\s*\(*\s*-?\d+(?:\.\d+)?\s*\)*)+"
TIMEZONE_PATTERN = r"[A-Z][A-Za-z_]+/[A-Za-z_]+(?:/[A-Za-z_]+)?|UTC"

_OPERATORS: dict[type[Any], Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
MAX_EXPONENT = 100  # keeps `9 ** 9 ** 9` from pinning a CPU


def evaluate(expression: str) -> float:
    """Evaluate + - * / % ** and parentheses over numbers, without `eval`."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ValueError("exponent too large")
            return float(_OPERATORS[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return float(_OPERATORS[type(node.op)](walk(node.operand)))
        raise ValueError("only numbers and + - * / % ** ( ) are allowed")

    return walk(ast.parse(expression.replace("^", "**"), mode="eval").body)


@tool(risk="read")
def calculate(
    expression: Annotated[str, Field(pattern=EXPRESSION_PATTERN, max_length=200)],
) -> str:
    """Calculate the value of an arithmetic expression such as 12 * (3 + 4).

    Args:
        expression: The arithmetic expression to evaluate.
    """
    return calculation(expression)


def calculation(expression: str) -> str:
    """The calculator's answer (shared with the MCP tool server, mcp_tools/)."""
    try:
        value = evaluate(expression)
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as exc:
        return f"Cannot calculate {expression!r}: {exc}."
    shown = int(value) if value.is_integer() else round(value, 10)
    return f"{expression.strip()} = {shown}"


@tool(risk="read")
def current_time(timezone: Annotated[str, Field(pattern=TIMEZONE_PATTERN)]) -> str:
    """Tell the current time in an IANA time zone such as Europe/Paris.

    Args:
        timezone: The IANA time zone name.
    """
    return time_in(timezone)


def time_in(timezone: str) -> str:
    """The clock's answer (shared with the MCP tool server, mcp_tools/)."""
    try:
        now = datetime.now(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {timezone!r}."
    return f"It is {now:%H:%M} on {now:%A %d %B %Y} in {timezone}."


def build() -> Agent[Any]:
    """Build the assistant agent."""
    return Agent(
        name=NAME,
        handoff_description=DESCRIPTION,
        instructions=PROMPT,
        tools=[calculate, current_time, *MEMORY_TOOLS],
        input_guardrails=[no_card_numbers],
    )


agent = serve_agent(build, name=NAME, description=DESCRIPTION)
