"""Which database failures answer 503 with Retry-After rather than 500."""

from __future__ import annotations

from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.availability import database_unavailable


def test_a_pool_with_no_free_connection_counts_as_unavailable() -> None:
    """A checkout that timed out (the pool is saturated) is a retry-later, not a bug."""
    assert database_unavailable(PoolTimeout("QueuePool limit of size 20 overflow 0 reached"))


def test_a_programming_error_is_not_unavailability() -> None:
    """A bug in the caller (here a KeyError) stays a 500."""
    assert not database_unavailable(KeyError("missing"))
