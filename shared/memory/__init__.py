"""Conversation sessions and long-term memory: sessions, the store, embeddings, retention.

Imports only the wings below it: platform, db, core.
"""
