"""Who is calling and what they may touch: keys, JWT, tenancy, thread access, limits, tools.

Imports only the wings below it: outbox, memory, platform, db, core.
"""
