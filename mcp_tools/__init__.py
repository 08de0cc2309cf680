"""The MCP tool server: the demo agents' shared tools (calculator, clock, error lookup).

A separate, stateless process speaking MCP streamable HTTP (the official `mcp` SDK's server,
stateless mode with JSON responses): `python -m mcp_tools` in the embedded default, its own
container in compose and its own container app in Bicep. Agents reach it when
ASCENT_MCP_TOOLS_URL names it (shared/agents/mcp_servers.py); with ASCENT_MCP_TOOLS_TOKEN set,
every MCP request must carry that token in the `X-Ascent-Tools-Key` header.
"""
