"""Tool impact classes (LLM06 excessive agency): every catalog tool is read, write or spend.

`read` tools only look things up or compute; `write` tools change state outside the run
(tickets, records, messages); `spend` tools move money or buy capacity. Approval is not
enforced here: shared/security/tool_approval.py wires `needs_approval` from these classes (write and
spend need approval unless the tenant's policy waives it).

The framework's own tools (the memory tools) are listed in `TOOL_CLASSES`; an agent module's
tools declare theirs with `ascent.tool(..., risk=...)`, which calls `declare_tool_class` when
the module is imported (shared/agents/loading.py refuses a catalog with an unclassified tool).
Tool classes are by name: two declarations of one name keep the most restricted. A name
nobody classified is treated as `spend`, the most restricted class, so it fails closed.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from shared.core.settings import get_settings

ToolClass = Literal["read", "write", "spend"]

TOOL_CLASSES: dict[str, ToolClass] = {
    "recall": "read",
    # Writes the tenant's long-term memory (state that outlives the run).
    "remember": "write",
}
_RANK: dict[str, int] = {"read": 0, "write": 1, "spend": 2}
TOOL_CLASS_NAMES: tuple[ToolClass, ...] = ("read", "write", "spend")

# The classes agent modules declared (ascent.tool), by tool name; filled as they are imported.
_DECLARED: dict[str, ToolClass] = {}


def declare_tool_class(tool_name: str, tool_class: ToolClass) -> None:
    """Record an agent module's tool class (the most restricted wins when a name repeats)."""
    if tool_class not in _RANK:
        raise ValueError(f"risk must be one of {', '.join(TOOL_CLASS_NAMES)}, not {tool_class!r}")
    known = _DECLARED.get(tool_name)
    if known is None or _RANK[tool_class] > _RANK[known]:
        _DECLARED[tool_name] = tool_class


def declared_class(tool_name: str) -> ToolClass | None:
    """The tool's class as the framework or an agent module declared it, or None."""
    return TOOL_CLASSES.get(tool_name) or _DECLARED.get(tool_name)


def tool_classes() -> dict[str, ToolClass]:
    """Every classified tool name and its class (framework tools, then declared ones)."""
    return {**_DECLARED, **TOOL_CLASSES}


def classify(tool_name: str) -> ToolClass:
    """The tool's impact class; unknown tools are `spend` (fail closed)."""
    return declared_class(tool_name) or "spend"


def needs_approval_by_default(tool_name: str) -> bool:
    """Whether the tool should pause for human approval absent a tenant policy waiver."""
    return classify(tool_name) != "read"


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
