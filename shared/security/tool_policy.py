"""Tool impact classes (LLM06 excessive agency): every catalog tool is read, write or spend.

`read` tools only look things up or compute; `write` tools change state outside the run
(tickets, records, messages); `spend` tools move money or buy capacity. Approval is not
enforced here: shared/security/tool_approval.py wires `needs_approval` from these classes (write and
spend need approval unless the tenant's policy waives it). An unclassified tool is treated as
`spend`, the most restricted class, so forgetting to classify a tool fails closed; a test
requires every tool of the catalog to be listed explicitly.
"""

from __future__ import annotations

from typing import Literal

ToolClass = Literal["read", "write", "spend"]

TOOL_CLASSES: dict[str, ToolClass] = {
    "calculate": "read",
    "current_time": "read",
    "lookup_error": "read",
    "recall": "read",
    # Writes the tenant's long-term memory (state that outlives the run).
    "remember": "write",
    # Computes a quote only; issuing the refund is the separate `spend` tool below.
    "refund_quote": "read",
    # Records a refund (moves money): pauses for a reviewer unless the tenant waives it.
    "issue_refund": "spend",
}


def classify(tool_name: str) -> ToolClass:
    """The tool's impact class; unknown tools are `spend` (fail closed)."""
    return TOOL_CLASSES.get(tool_name, "spend")


def needs_approval_by_default(tool_name: str) -> bool:
    """Whether the tool should pause for human approval absent a tenant policy waiver."""
    return classify(tool_name) != "read"
