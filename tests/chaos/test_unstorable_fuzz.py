"""A surrogate-and-NUL fuzz of every endpoint of a running dev host: no 5xx, no partial write.

The operations come from the served OpenAPI document (itself built from the route table), so
a new route joins the fuzz without an edit here. Each operation gets bodies with a lone UTF-16
surrogate or a NUL somewhere (a value, a nested value, a key), and NUL in each path and query
parameter. Every answer must be below 500, every bad body a 400, and the database must hold
exactly the rows it held before: the refusal happens before anything is written.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.security_support import ADMIN_KEY

pytestmark = pytest.mark.e2e

# JSON bodies (sent as ASCII JSON, so `\udfff` travels as its escape, exactly as a client
# would send it): a value, a nested value, a key, and a list body.
BAD_BODIES: list[Any] = [
    {"metadata": {"k": "\udfff"}},
    {"input": "a\x00b"},
    {"\ud800": "x"},
    {"messages": [{"role": "user", "content": "hi \ud800"}], "model": "triage"},
    ["\udfff"],
]
BAD_PARAM = "\x00"


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DevHost, Path]]:
    """A dev host with the admin API on, once on SQLite and once on Postgres; and its data dir."""
    url = POSTGRES_URL if request.param == "postgres" else None
    data_dir = tmp_path_factory.mktemp("unstorable")
    host = start_devhost(data_dir, database_url=url, extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY})
    yield host, data_dir
    host.stop()


def row_counts(data_dir: Path, postgres: bool) -> dict[str, int]:
    """Rows per table of the host's database."""
    if postgres:
        assert POSTGRES_URL is not None
        with psycopg.connect(POSTGRES_URL) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
            # Table names come from the catalog, not from input.
            count = 'SELECT count(*) FROM "{}"'
            return {n: conn.execute(count.format(n)).fetchone()[0] for n in names}  # type: ignore[index]
    with sqlite3.connect(data_dir / "ascent.db") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        count = 'SELECT count(*) FROM "{}"'
        return {n: conn.execute(count.format(n)).fetchone()[0] for n in names}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) of every operation in the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def fill(path: str, operation: dict[str, Any], bad: str | None = None) -> str:
    """The path with each path parameter a fresh id, or `bad` for the parameter named so."""
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            # A NUL travels percent-encoded in a path (httpx refuses a raw one).
            value = "%00" if param["name"] == bad else str(uuid.uuid4())
            path = path.replace("{" + param["name"] + "}", value)
    return path


def test_unstorable_text_is_refused_everywhere_before_anything_is_written(
    fuzzed: tuple[DevHost, Path], request: pytest.FixtureRequest
) -> None:
    """Every operation answers a lone surrogate or a NUL in its body with 400 and in its path or
    query parameters with a 4xx, never a 5xx, and no table gains or loses a row."""
    host, data_dir = fuzzed
    postgres = "postgres" in request.node.callspec.id
    document = httpx.get(f"{host.base_url}/openapi.json", timeout=30).json()
    before = row_counts(data_dir, postgres)
    failures: list[str] = []
    cases = 0
    with httpx.Client(base_url=host.base_url, timeout=30) as client:
        for method, template, operation in operations(document):
            key = ADMIN_KEY if template.startswith("/platform/") else host.api_key
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            sent: list[tuple[str, str, dict[str, str], bytes | None, bool]] = []
            if "requestBody" in operation:
                path = fill(template, operation)
                sent += [(path, "body", {}, json.dumps(b).encode(), True) for b in BAD_BODIES]
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    sent.append(
                        (fill(template, operation, param["name"]), param["name"], {}, None, False)
                    )
                elif param["in"] == "query":
                    query = {param["name"]: BAD_PARAM}
                    sent.append((fill(template, operation), param["name"], query, None, False))
            for path, what, query, body, body_case in sent:
                cases += 1
                response = client.request(method, path, params=query, content=body, headers=headers)
                bad = response.status_code >= 500 or (body_case and response.status_code != 400)
                if bad or (not body_case and response.status_code >= 500):
                    answer = f"{response.status_code} {response.text[:200]}"
                    failures.append(f"{method} {template} [{what}]: {answer}")
    after = row_counts(data_dir, postgres)
    changed = {t: (before.get(t), after.get(t)) for t in after if before.get(t) != after.get(t)}
    request.node.user_properties.append(("fuzz_cases", cases))
    assert not failures, "\n".join(failures)
    assert not changed, f"rows written by refused requests: {changed}"
