"""The demo agents: Ascent's default catalog when ASCENT_AGENTS names none of your own.

Each module declares its agent with `ascent.serve_agent` (the public API, ascent/); the catalog
(shared/agents/loading.py) serves the specs this package lists in `AGENTS`, in this order. The
`features` module shows the Agents SDK's features as served agents.
"""

from __future__ import annotations

from ascent import AgentSpec
from examples import assistant, billing, tech_support, triage

AGENTS: list[AgentSpec] = [triage.agent, assistant.agent, billing.agent, tech_support.agent]
