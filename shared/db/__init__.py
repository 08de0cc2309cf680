"""Persistence: SQLModel tables, the async engine and keyword-only repository functions."""
