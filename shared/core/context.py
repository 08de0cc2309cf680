"""The run context every tool and dynamic instruction receives: whose run this is, and where.

The run engine passes a `RunContext` to the Agents SDK (`Runner.run_streamed(...,
context=...)`), so a tool reads it as `RunContextWrapper.context`: the memory tools scope
memories by tenant and user, approval checks and side-effect records by thread and run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunContext:
    """Tenant and user of a run (who asked: a user, else an API key id), its thread and id."""

    tenant_id: str
    user_id: str
    thread_id: str | None = None
    run_id: str | None = None
