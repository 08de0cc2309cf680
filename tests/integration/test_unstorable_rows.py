"""Rows stored before the API refused unstorable text still render.

Older versions committed lone UTF-16 surrogates into JSON columns (Postgres `json` and SQLite
keep the escape `\\udfff` as sent), after which every read of the row answered 500. The test
writes such a row below the API, with plain SQL, and reads it back through the API: the read
answers 200 and shows U+FFFD where the surrogate was (shared/db/engine.py `load_stored_json`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db.engine import get_engine
from tests.conftest import BACKENDS
from tests.engine_support import Api, api_app

# The metadata exactly as an old version stored it: JSON text with a lone surrogate's escape.
STORED = '{"k": "a\\udfffb", "ok": "\\ud83d\\ude00"}'


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The in-process API on SQLite, then on Postgres."""
    cache = tmp_path_factory.getbasetemp() / "engine-template"
    cache.mkdir(exist_ok=True)
    async with api_app(request.param, monkeypatch, tmp_path, cache) as app:
        yield app


async def test_a_stored_lone_surrogate_still_renders(api: Api) -> None:
    """A thread whose stored metadata holds a lone surrogate answers GET and search with 200,
    the surrogate shown as U+FFFD and a valid pair kept."""
    thread_id = str(uuid.uuid4())
    async with get_engine().begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO threads (id, tenant_id, status, metadata, created_at, updated_at) "
                "VALUES (:id, :tenant, 'idle', :metadata, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": thread_id, "tenant": api.tenant_id, "metadata": STORED},
        )
    got = await api.client.get(f"/threads/{thread_id}")
    assert got.status_code == 200, got.text
    assert got.json()["metadata"] == {"k": "a\ufffdb", "ok": "\U0001f600"}
    found = await api.client.post("/threads/search", json={})
    assert found.status_code == 200, found.text
    assert thread_id in [t["thread_id"] for t in found.json()]
