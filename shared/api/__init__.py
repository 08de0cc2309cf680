"""The protocol adapters: Agent Protocol, OpenAI and the simple route, problem+json, OpenAPI.

Top wing of `shared/`: it may import every wing below it (runs, agents, security, outbox,
memory, platform, db, core); nothing in `shared/` imports it.
"""
