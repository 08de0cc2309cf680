"""Domain events out of the process: the transactional outbox, CloudEvents, publish, webhooks.

Imports only the wings below it: memory, platform, db, core.
"""
