"""`Idempotency-Key` on every POST (shared/api/idempotency.py), over the real HTTP functions.

The matrix is built from the route table (the OpenAPI document of `function_app`), so a new
POST route joins it without an edit: each is sent twice with one key, and the retry must get
the first answer back (`Idempotent-Replayed: true`) and write nothing (every table keeps its
row count). Creating routes get valid bodies, so "nothing written" means "not run twice".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import function_app
from shared.api.openapi import build_document
from shared.db.engine import get_engine
from shared.db.models import utcnow
from tests.conftest import BACKENDS
from tests.engine_support import Api, api_app
from tests.security_support import ADMIN_KEY

RUN = {"agent_id": "assistant", "input": "hello"}
# Valid bodies for the creating routes; any other POST gets `{}` (its 4xx is replayed too).
BODIES: dict[str, Any] = {
    "/agents/{agent}/runs": {"input": "hello"},
    "/assistants": {"graph_id": "assistant"},
    "/runs": RUN,
    "/runs/wait": RUN,
    "/runs/stream": RUN,
    "/runs/batch": [RUN],
    "/runs/crons": {"assistant_id": "assistant", "input": "hi", "schedule": "0 0 1 1 *"},
    "/threads": {},
    "/threads/{thread_id}/runs": RUN,
    "/threads/{thread_id}/runs/wait": RUN,
    "/threads/{thread_id}/runs/stream": RUN,
    "/threads/{thread_id}/runs/crons": {
        "assistant_id": "assistant",
        "input": "hi",
        "schedule": "0 0 1 1 *",
    },
    "/v1/chat/completions": {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "assistant", "input": "hi"},
    "/platform/tenants": {"name": "idempotent"},
    "/store/namespaces": {},
}


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The in-process API (offline model) on SQLite, then on Postgres, with the admin API on."""
    cache = tmp_path_factory.getbasetemp() / "engine-template"
    cache.mkdir(exist_ok=True)
    async with api_app(
        request.param, monkeypatch, tmp_path, cache, ASCENT_ADMIN_KEY=ADMIN_KEY
    ) as app:
        yield app


async def row_counts() -> dict[str, int]:
    """Rows per table, except the keys themselves."""
    from sqlmodel import SQLModel

    counts: dict[str, int] = {}
    async with get_engine().connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name != "idempotency_keys":
                # Table names come from the models, not from input.
                query = text(f'SELECT count(*) FROM "{table.name}"')  # noqa: S608
                counts[table.name] = int((await conn.execute(query)).scalar_one())
    return counts


async def settle() -> None:
    """Wait until background runs (the inline queue) have ended, so counts stand still."""
    from shared.runs.dispatch import wait_for_background

    await wait_for_background()


async def test_every_post_replays_its_first_answer_and_writes_nothing_again(api: Api) -> None:
    """For every POST route: a retry with the same key gets the first status and body back,
    marked replayed (a streamed answer: 409 pointing at its run), and no table gains a row."""
    thread = await api.new_thread()
    document = build_document(function_app.app)
    failures: list[str] = []
    for path, item in document["paths"].items():
        if "post" not in item:
            continue
        url = path.replace("{thread_id}", thread).replace("{agent}", "assistant")
        url = url.replace("{tenant_id}", api.tenant_id)
        url = "".join(p if not p.startswith("{") else str(uuid.uuid4()) for p in _parts(url))
        headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        if path.startswith("/platform/"):
            headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        if path == "/mcp":
            headers["Accept"] = "application/json, text/event-stream"
        body = json.dumps(BODIES.get(path, {})).encode()
        sent = {"content": body, "headers": headers | {"Content-Type": "application/json"}}
        first = await api.client.post(url, **sent)  # type: ignore[arg-type]
        await settle()
        before = await row_counts()
        again = await api.client.post(url, **sent)  # type: ignore[arg-type]
        await settle()
        after = await row_counts()
        grown = {t: (before[t], after[t]) for t in after if after[t] != before[t]}
        streamed = first.headers.get("content-type", "").startswith("text/event-stream")
        if first.status_code >= 500:
            failures.append(f"POST {path}: first answer {first.status_code}")
        elif streamed:
            if again.status_code != 409:
                failures.append(f"POST {path}: stream retried as {again.status_code}")
        elif (again.status_code, again.content) != (first.status_code, first.content):
            failures.append(f"POST {path}: {first.status_code} then {again.status_code}")
        elif again.headers.get("idempotent-replayed") != "true":
            failures.append(f"POST {path}: retry not marked replayed")
        if grown:
            failures.append(f"POST {path}: the retry wrote rows {grown}")
    assert not failures, "\n".join(failures)


def _parts(url: str) -> list[str]:
    """A URL split into literal text and `{param}` placeholders."""
    out: list[str] = []
    for chunk in url.split("{"):
        if "}" in chunk:
            name, rest = chunk.split("}", 1)
            out += ["{" + name + "}", rest]
        else:
            out.append(chunk)
    return out


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    """The same key with a different body is a 422 problem, and the second request runs not."""
    headers = {"Idempotency-Key": "reused-key"}
    first = await api.client.post("/threads", json={"metadata": {"n": 1}}, headers=headers)
    other = await api.client.post("/threads", json={"metadata": {"n": 2}}, headers=headers)
    assert first.status_code == 200, first.text
    assert other.status_code == 422, other.text
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_keys_are_per_tenant(api: Api) -> None:
    """Another tenant sending the same key gets its own answer (its own new thread)."""
    from shared.db import repo
    from shared.db.engine import db_session
    from shared.security.auth import issue_api_key

    async with db_session() as db:
        other = await repo.create_tenant(session=db, name="other")
        other_key = await issue_api_key(session=db, tenant_id=other.id)
        await db.commit()
    headers = {"Idempotency-Key": "shared-key"}
    mine = await api.client.post("/threads", json={}, headers=headers)
    theirs = await api.client.post(
        "/threads", json={}, headers=headers | {"Authorization": f"Bearer {other_key}"}
    )
    assert (mine.status_code, theirs.status_code) == (200, 200)
    assert mine.json()["thread_id"] != theirs.json()["thread_id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_a_retry_while_the_first_runs_is_409(api: Api) -> None:
    """A key whose first request is still being processed answers a retry with 409."""
    headers = {"Idempotency-Key": "busy-key"}
    first = await api.client.post("/threads", json={}, headers=headers)
    assert first.status_code == 200
    # As if the first request were still running: its row pending, its lock held.
    async with get_engine().begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET status = 'pending', locked_until = :until "
                "WHERE key = 'busy-key'"
            ),
            {"until": utcnow() + timedelta(hours=1)},
        )
    retry = await api.client.post("/threads", json={}, headers=headers)
    assert retry.status_code == 409, retry.text


async def test_expired_keys_are_purged_and_usable_again(api: Api) -> None:
    """purge_retention deletes keys past their expiry; such a key then runs as a new one."""
    from aca_jobs.purge_retention import purge_idempotency_keys

    headers = {"Idempotency-Key": "old-key"}
    first = await api.client.post("/threads", json={}, headers=headers)
    later = utcnow() + timedelta(hours=25)
    assert await purge_idempotency_keys(now=later) >= 1
    async with get_engine().connect() as conn:
        left = await conn.execute(
            text("SELECT count(*) FROM idempotency_keys WHERE key = 'old-key'")
        )
        assert left.scalar_one() == 0
    again = await api.client.post("/threads", json={}, headers=headers)
    assert again.json()["thread_id"] != first.json()["thread_id"]
