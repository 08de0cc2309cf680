"""Helpers of the human-in-the-loop end-to-end tests: pause a billing run, read reviews."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.settings import Settings
from shared.db import repo
from shared.db.engine import build_engine
from shared.db.review_models import Refund
from shared.security.auth import issue_api_key
from tests.conftest import POSTGRES_URL, DevHost
from tests.e2e.protocol_helpers import poll, wait_status

T = TypeVar("T")

REFUND_REQUEST = "Please issue a refund of 40"
BIG_QUOTE = "Can I get a refund of 5000 after 10 days?"


def start_paused_run(client: httpx.Client, text: str = REFUND_REQUEST) -> dict[str, Any]:
    """Start a billing run on a new thread and wait until it is interrupted; return the run."""
    thread = client.post("/threads", json={})
    assert thread.status_code == 200, thread.text
    thread_id = thread.json()["thread_id"]
    created = client.post(f"/threads/{thread_id}/runs", json={"agent_id": "billing", "input": text})
    assert created.status_code == 200, created.text
    run: dict[str, Any] = created.json()
    wait_status(client, run["run_id"], "interrupted", "success", "error")
    return run


def pending_review(client: httpx.Client, run_id: str) -> dict[str, Any]:
    """The pending review of a run (polled until it is listed)."""

    def find() -> dict[str, Any] | None:
        # Page through every pending review: on a shared database the tenant may hold many.
        offset = 0
        while True:
            listed = client.get("/reviews", params={"limit": 1000, "offset": offset})
            assert listed.status_code == 200, listed.text
            page = listed.json()
            found = next((r for r in page if r["run_id"] == run_id), None)
            if found is not None or len(page) < 1000:
                return found
            offset += len(page)

    found: dict[str, Any] = poll(find, "a pending review of the run")
    return found


def decide(client: httpx.Client, review_id: str, decision: str, **extra: Any) -> httpx.Response:
    """POST a decision."""
    return client.post(f"/reviews/{review_id}/decision", json={"decision": decision, **extra})


def thread_messages(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    """The thread's conversation items."""
    response = client.get(f"/threads/{thread_id}/messages")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def refund_rows(data_dir: Path, tenant_run: str | None = None) -> int:
    """How many refunds the embedded (SQLite) database holds (of one run, when given)."""
    with sqlite3.connect(data_dir / "ascent.db") as db:
        if tenant_run is None:
            return int(db.execute("SELECT COUNT(*) FROM refunds").fetchone()[0])
        sql = "SELECT COUNT(*) FROM refunds WHERE run_id = ?"
        return int(db.execute(sql, (tenant_run,)).fetchone()[0])


def backend_of(request: pytest.FixtureRequest, fixture: str = "devhost") -> str | None:
    """The backend the test's dev host fixture runs on: None (SQLite) or "postgres"."""
    backend = request.node.callspec.params.get(fixture)
    return str(backend) if backend else None


def host_database_url(host: DevHost, backend: str | None) -> str:
    """The async SQLAlchemy URL of a dev host's database (its data dir's SQLite, or Postgres)."""
    settings = Settings(
        ASCENT_DATA_DIR=str(host.log_path.parent),
        DATABASE_URL=POSTGRES_URL if backend == "postgres" else None,
    )
    return settings.sqlalchemy_url


def use_host_database(monkeypatch: pytest.MonkeyPatch, host: DevHost, backend: str | None) -> None:
    """Point this test process's settings (and engine) at a dev host's database."""
    from shared.core.settings import get_settings
    from shared.db.engine import _sessionmaker, get_engine

    monkeypatch.setenv("ASCENT_DATA_DIR", str(host.log_path.parent))
    if backend == "postgres" and POSTGRES_URL:
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


async def _in_database(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = build_engine(url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            return await work(db)
    finally:
        await engine.dispose()


def refunds_of(url: str, run_id: str) -> int:
    """How many refunds a run issued, in any backend's database."""

    async def count(db: AsyncSession) -> int:
        rows = await db.exec(select(Refund.id).where(Refund.run_id == run_id))
        return len(rows.all())

    return asyncio.run(_in_database(url, count))


def new_tenant_key(url: str) -> str:
    """A second tenant and an API key of it, inserted straight into a host's database."""

    async def create(db: AsyncSession) -> str:
        tenant = await repo.create_tenant(session=db, name=f"other-{uuid.uuid4().hex[:8]}")
        key = await issue_api_key(session=db, tenant_id=tenant.id)
        await db.commit()
        return key

    return asyncio.run(_in_database(url, create))


def thread_runs_to(client: httpx.Client, thread_id: str, text: str) -> dict[str, Any]:
    """Start a billing run on an existing thread and wait until it is interrupted or ended."""
    created = client.post(f"/threads/{thread_id}/runs", json={"agent_id": "billing", "input": text})
    assert created.status_code == 200, created.text
    run: dict[str, Any] = created.json()
    wait_status(client, run["run_id"], "interrupted", "success", "error")
    return run


def run_json(client: httpx.Client, run_id: str) -> dict[str, Any]:
    """A run as GET /runs/{run_id} shows it."""
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
