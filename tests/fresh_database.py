"""A new, empty Postgres database for one test, dropped afterwards.

The server's `test` database is shared and persistent: every dev host and test run on this
machine writes to it, and a concurrent test run may be draining its queues and outboxes.
A test whose outcome depends on *global* work (draining every due event, purging, rolling
up, counting rows) therefore runs on a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


@contextmanager
def fresh_postgres_database(
    server_url: str, *, prefix: str, driver: str = "postgresql"
) -> Iterator[str]:
    """Create `<prefix>_<random>` on the server of `server_url`; yield its URL; drop it after."""
    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # generated name, never user input
    try:
        yield server.set(drivername=driver, database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
