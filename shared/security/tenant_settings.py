"""Admin API logic for a tenant's other settings: retention and the tool approval policy.

- Retention (`GET/PUT /api/platform/tenants/{tenant_id}/retention`): days each kind of record
  is kept before `purge_retention` deletes it (shared/memory/retention.py; `tenant_retention` row
  over ASCENT_RETENTION_DAYS_*). null = the deployment default, 0 = keep forever. The job reads the
  row on its next run; nothing caches it.
- Tool policy (`GET/PUT /api/platform/tenants/{tenant_id}/tool-policy`): the write and spend
  tools of the catalog (shared/security/tool_policy.py) that run for this tenant without a
  reviewer's approval (`tool_policies`, read by shared/security/tool_approval.py on every gated
  tool call, so a
  change applies to the next call on every instance). null = the deployment default,
  ASCENT_AUTO_APPROVE_TOOLS; a list (even empty) replaces that default for the tenant.

Budgets (`.../limits`) live in shared/security/tenant_limits.py, next to their cache.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.jobs_models import TenantRetention
from shared.db.models import utcnow
from shared.db.review_models import ToolPolicy
from shared.memory.retention import MAX_DAYS, get_retention, set_retention
from shared.security.tenant_limits import require_tenant
from shared.security.tool_approval import default_auto_approve
from shared.security.tool_policy import (
    declared_mcp_classes,
    needs_approval_by_default,
    tool_classes,
)


def approvable_tools() -> tuple[str, ...]:
    """The write and spend tools of the catalog: only they pause, so only they can be waived.

    The catalog's tools are classified as it loads (shared/agents/loading.py), so a caller
    validating a policy loads the catalog first (functions/admin_http.py does).
    """
    return tuple(sorted(t for t in tool_classes() if needs_approval_by_default(t)))


MAX_POLICY_TOOLS = 64


# --- retention -------------------------------------------------------------------------------

Days = Annotated[StrictInt, Field(ge=0, le=MAX_DAYS)]


class RetentionOverrides(BaseModel):
    """Body of `PUT .../retention`: days per kind, each 0 (keep forever) to 36500, or null
    (the deployment default). All four are required, so a PUT never resets one by omission."""

    model_config = ConfigDict(extra="forbid")
    threads_days: Days | None = Field(description="Threads not updated for this many days.")
    runs_days: Days | None = Field(description="Finished runs, by when they finished.")
    run_events_days: Days | None = Field(description="Stream events of finished runs.")
    store_days: Days | None = Field(description="Store items not updated for this many days.")


class RetentionDays(BaseModel):
    """The retention `purge_retention` applies to the tenant now (0 = forever)."""

    threads_days: int
    runs_days: int
    run_events_days: int
    store_days: int


class TenantRetentionOut(BaseModel):
    """A tenant's retention as the admin API shows it: its overrides and their effect."""

    tenant_id: str
    overrides: RetentionOverrides
    effective: RetentionDays


async def get_tenant_retention(*, session: AsyncSession, tenant_id: str) -> TenantRetentionOut:
    """The tenant's retention overrides and effective days."""
    await require_tenant(session, tenant_id)
    row = await session.get(TenantRetention, tenant_id)
    overrides = RetentionOverrides(
        threads_days=row.threads_days if row else None,
        runs_days=row.runs_days if row else None,
        run_events_days=row.run_events_days if row else None,
        store_days=row.store_days if row else None,
    )
    effective = await get_retention(session=session, tenant_id=tenant_id)
    return TenantRetentionOut(
        tenant_id=tenant_id,
        overrides=overrides,
        effective=RetentionDays(
            threads_days=effective.threads_days,
            runs_days=effective.runs_days,
            run_events_days=effective.run_events_days,
            store_days=effective.store_days,
        ),
    )


async def set_tenant_retention(
    *, session: AsyncSession, tenant_id: str, body: RetentionOverrides
) -> TenantRetentionOut:
    """Replace the tenant's retention overrides; the next `purge_retention` run applies them."""
    await require_tenant(session, tenant_id)
    await set_retention(session=session, tenant_id=tenant_id, **body.model_dump())
    await session.commit()
    return await get_tenant_retention(session=session, tenant_id=tenant_id)


# --- tool approval policy --------------------------------------------------------------------


def _approvable(name: str) -> str:
    """Accept only a write or spend tool of the catalog, or of an MCP server ASCENT_MCP_SERVERS
    declares (a read tool never pauses)."""
    approvable = approvable_tools()
    if name not in approvable and declared_mcp_classes().get(name, "read") == "read":
        raise ValueError(f"not a write or spend tool of the catalog: {', '.join(approvable)}")
    return name


def _enum_of_approvable(schema: dict[str, Any]) -> None:
    """List the approvable tools in the JSON Schema, as they are when the schema is made."""
    schema["enum"] = list(approvable_tools())


ApprovableTool = Annotated[
    str, AfterValidator(_approvable), Field(json_schema_extra=_enum_of_approvable)
]


class ToolPolicyUpdate(BaseModel):
    """Body of `PUT .../tool-policy`: the write/spend tools that run without approval for the
    tenant (a list, possibly empty), or null to follow ASCENT_AUTO_APPROVE_TOOLS again."""

    model_config = ConfigDict(extra="forbid")
    auto_approve: list[ApprovableTool] | None = Field(
        max_length=MAX_POLICY_TOOLS,
        description="Catalog tools of class write or spend; duplicates are ignored.",
    )


class ToolPolicyOut(BaseModel):
    """A tenant's tool approval policy: its own list (null = the default) and what applies."""

    tenant_id: str
    auto_approve: list[str] | None = Field(
        description="The tenant's policy; null when it follows ASCENT_AUTO_APPROVE_TOOLS."
    )
    effective: list[str] = Field(description="The tools that run without approval now.")


def _default_tools() -> list[str]:
    return sorted(default_auto_approve())


async def get_tool_policy(*, session: AsyncSession, tenant_id: str) -> ToolPolicyOut:
    """The tenant's approval policy and the tools it waives approval for."""
    await require_tenant(session, tenant_id)
    policy = await session.get(ToolPolicy, tenant_id)
    if policy is None:
        return ToolPolicyOut(tenant_id=tenant_id, auto_approve=None, effective=_default_tools())
    tools = sorted(policy.auto_approve)
    return ToolPolicyOut(tenant_id=tenant_id, auto_approve=tools, effective=tools)


async def set_tool_policy(
    *, session: AsyncSession, tenant_id: str, body: ToolPolicyUpdate
) -> ToolPolicyOut:
    """Replace (a list) or remove (null) the tenant's policy; the next tool call follows it."""
    await require_tenant(session, tenant_id)
    policy = await session.get(ToolPolicy, tenant_id)
    if body.auto_approve is None:
        if policy is not None:
            await session.delete(policy)
    else:
        tools = sorted(set(body.auto_approve))
        if policy is None:
            policy = ToolPolicy(tenant_id=tenant_id, auto_approve=tools)
        else:
            # A new list object: SQLAlchemy does not track in-place changes of a JSON column.
            policy.auto_approve = tools
            policy.updated_at = utcnow()
        session.add(policy)
    await session.commit()
    return await get_tool_policy(session=session, tenant_id=tenant_id)
