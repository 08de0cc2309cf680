"""The one run engine: create, lease, execute, pause and resume (HITL), cancel, events, crons.

Every entry point (simple route, Agent Protocol, OpenAI, crons, HITL resume) is an adapter over
the executor in `shared.runs.engine`. Imports only the wings below it: agents, security,
outbox, memory, platform, db, core.
"""
