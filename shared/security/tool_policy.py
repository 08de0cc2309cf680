"""Tool impact classes (LLM06 excessive agency): every catalog tool is read, write or spend.

`read` tools only look things up or compute; `write` tools change state outside the run
(tickets, records, messages); `spend` tools move money or buy capacity. Approval is not
enforced here: shared/security/tool_approval.py wires `needs_approval` from these classes (write and
spend need approval unless the tenant's policy waives it). An unclassified tool is treated as
`spend`, the most restricted class, so forgetting to classify a tool fails closed; a test
requires every tool of the catalog to be listed explicitly.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from shared.core.settings import get_settings

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


_RANK: dict[str, int] = {"read": 0, "write": 1, "spend": 2}


def declared_mcp_classes() -> dict[str, ToolClass]:
    """The classes ASCENT_MCP_SERVERS gives MCP tools, by tool name (the most restricted when
    two servers differ); empty when unset or invalid (shared/agents/mcp_servers.py refuses it)."""
    try:
        declared: Any = json.loads(get_settings().mcp_servers or "{}")
    except ValueError:
        return {}
    found: dict[str, ToolClass] = {}
    servers = declared.values() if isinstance(declared, dict) else []
    for entry in (e for listed in servers if isinstance(listed, list) for e in listed):
        tools = entry.get("tools") if isinstance(entry, dict) else None
        for name, cls in (tools or {}).items() if isinstance(tools, dict) else ():
            if cls in _RANK and _RANK[cls] >= _RANK[found.get(name, "read")]:
                found[name] = cast(ToolClass, cls)
    return found
