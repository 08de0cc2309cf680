"""Which tool calls pause for a human: `needs_approval` wired from the tool impact classes.

Every `write` or `spend` tool of the catalog (shared/security/tool_policy.py) gets a
`needs_approval` callable, so its call pauses the run for a reviewer unless:

- the tenant's policy (`tool_policies.auto_approve`) lists the tool, or, for a tenant without a
  policy row, the deployment default ASCENT_AUTO_APPROVE_TOOLS does (default: `remember`, whose
  writes stay in the caller's own memory namespace);
- a reviewer chose "always approve this tool in this thread" earlier in the run's thread.

`read` tools never pause. The callable reads the tenant and thread from the run context
(`RunContext`), so the same built agent serves every tenant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from agents import Agent, FunctionTool, Handoff, RunContextWrapper
from sqlmodel import select

from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.review_models import ThreadToolApproval, ToolPolicy
from shared.security.tool_policy import ToolClass, needs_approval_by_default

ApprovalCheck = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]


def default_auto_approve() -> set[str]:
    """The deployment's auto-approved tools (ASCENT_AUTO_APPROVE_TOOLS, comma-separated)."""
    return {t.strip() for t in get_settings().auto_approve_tools.split(",") if t.strip()}


async def auto_approved_tools(tenant_id: str) -> set[str]:
    """The tenant's auto-approved tools: its policy row, else the deployment default."""
    async with db_session() as db:
        policy = await db.get(ToolPolicy, tenant_id)
    return set(policy.auto_approve) if policy is not None else default_auto_approve()


async def requires_approval(
    context: Any, tool_name: str, tool_class: ToolClass | None = None
) -> bool:
    """Whether a call of this tool, in this run context, must wait for a human decision.

    `tool_class` is the class an MCP server's declaration gives the tool (its tools are not in
    the catalog's table); None: the catalog's class.
    """
    if tool_class == "read" or (tool_class is None and not needs_approval_by_default(tool_name)):
        return False
    tenant = getattr(context, "tenant_id", None)
    if not isinstance(tenant, str) or not tenant:
        return tool_name not in default_auto_approve()
    if tool_name in await auto_approved_tools(tenant):
        return False
    thread = getattr(context, "thread_id", None)
    if isinstance(thread, str) and thread:
        async with db_session() as db:
            stmt = select(ThreadToolApproval.tool).where(
                ThreadToolApproval.tenant_id == tenant,
                ThreadToolApproval.thread_id == thread,
                ThreadToolApproval.tool == tool_name,
            )
            if (await db.exec(stmt)).first() is not None:
                return False
    return True


def approval_check(tool_name: str) -> ApprovalCheck:
    """The `needs_approval` callable of one tool."""

    async def needs_approval(
        ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        return await requires_approval(ctx.context, tool_name)

    return needs_approval


def reachable_agents(agent: Agent[Any]) -> Iterator[Agent[Any]]:
    """The agent and every agent it hands off to (an Agent or an SDK `handoff()`), each once."""
    seen: set[int] = set()
    stack: list[Agent[Any]] = [agent]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for target in current.handoffs:
            if isinstance(target, Agent):
                stack.append(target)
            elif isinstance(target, Handoff) and target._agent_ref is not None:
                referenced = target._agent_ref()
                if isinstance(referenced, Agent):
                    stack.append(referenced)


def gate_tools(agent: Agent[Any]) -> Agent[Any]:
    """Give every write/spend function tool of the agent (and of agents it hands off to) its
    approval check; tools are copied, so module-level tool objects stay untouched."""
    for current in list(reachable_agents(agent)):
        current.tools = [
            dataclasses.replace(tool, needs_approval=approval_check(tool.name))
            if isinstance(tool, FunctionTool) and needs_approval_by_default(tool.name)
            else tool
            for tool in current.tools
        ]
    return agent
