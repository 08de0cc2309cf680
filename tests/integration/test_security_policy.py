"""Tool impact classification (read/write/spend) for excessive-agency controls."""

from __future__ import annotations

from shared.agents import catalog_tools
from shared.security.tool_policy import classify, needs_approval_by_default, tool_classes


def test_every_catalog_tool_is_classified() -> None:
    """Each tool reachable from the agent catalog has an explicit class."""
    unclassified = sorted({f"{a}.{t}" for a, t in catalog_tools() if t not in tool_classes()})
    assert unclassified == []


def test_catalog_has_tools_to_classify() -> None:
    """The walk finds the catalog's tools (guards against an empty, vacuous walk)."""
    assert {t for _, t in catalog_tools()} >= {"calculate", "refund_quote", "lookup_error"}


def test_unknown_tool_fails_closed() -> None:
    """An unclassified tool is treated as `spend` and needs approval."""
    assert (classify("wire_money"), needs_approval_by_default("wire_money")) == ("spend", True)


def test_read_tools_need_no_approval() -> None:
    """Read-only tools run without approval by default."""
    list(catalog_tools())  # the catalog's tools are classified as it loads
    assert needs_approval_by_default("calculate") is False
