"""Shared fixtures and helpers of the job tests: a FRESH database per test, seeding, subprocesses.

Every job test runs on a database of its own (a new SQLite file, or `CREATE DATABASE
ascent_j_<random>` on the test Postgres server, dropped afterwards), so purge and roll-up
tests never see another test's rows. Jobs run in-process (calling their async entry points,
with `now` injected) or as real `python -m aca_jobs <name>` subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from local.devhost_process import ROOT
from shared.core.settings import get_settings
from shared.db import repo
from shared.db.engine import _sessionmaker, db_session, get_engine
from shared.db.migrate import migrate
from shared.db.models import Run, RunEvent, Tenant, Thread, new_id
from tests.conftest import POSTGRES_URL
from tests.fresh_database import fresh_postgres_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
# Settings a job subprocess must not inherit from the test runner's environment.
_DROP = {"DATABASE_URL", "ASCENT_DATA_DIR", "ASCENT_ENV", "MODEL_PROVIDER", "OPENAI_API_KEY"}
DEADLINE_SECONDS = 60.0


@dataclass
class JobDb:
    """A fresh, migrated database and the environment a job subprocess needs to use it."""

    url: str
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a job subprocess on this database."""
        env = {k: v for k, v in os.environ.items() if k not in _DROP}
        env.update(
            DATABASE_URL=self.url,
            ASCENT_DATA_DIR=str(self.data_dir),
            ASCENT_ENV="test",
            PYTHONUNBUFFERED="1",
            **self.extra_env,
            **extra,
        )
        return env


def _reset_caches() -> None:
    for cached in (get_settings, get_engine, _sessionmaker):
        cached.cache_clear()


@pytest.fixture(params=BACKENDS)
async def job_db(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[JobDb]:
    """A fresh database of this test only (SQLite file or new Postgres database), migrated."""
    data_dir = tmp_path / "data"
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'jobs.db'}"
        else:
            assert POSTGRES_URL is not None
            url = stack.enter_context(fresh_postgres_database(POSTGRES_URL, prefix="ascent_j"))
        monkeypatch.setenv("DATABASE_URL", url)
        _reset_caches()
        try:
            await migrate(get_engine())
            yield JobDb(url=url, data_dir=data_dir)
        finally:
            await get_engine().dispose()
            _reset_caches()


# --- seeding ---------------------------------------------------------------------------------


async def make_tenant(prefix: str = "t") -> str:
    """A new tenant with a unique id."""
    tenant_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    async with db_session() as db:
        await repo.create_tenant(session=db, name=tenant_id, tenant_id=tenant_id)
        await db.commit()
    return tenant_id


async def make_thread(tenant_id: str, *, updated_at: datetime, status: str = "idle") -> str:
    """A thread last updated at `updated_at`."""
    async with db_session() as db:
        thread = Thread(
            tenant_id=tenant_id, status=status, created_at=updated_at, updated_at=updated_at
        )
        db.add(thread)
        await db.commit()
    return thread.id


async def make_run(
    tenant_id: str,
    thread_id: str | None,
    *,
    created_at: datetime,
    finished_at: datetime | None = None,
    status: str = "success",
    agent: str = "assistant",
    user_id: str | None = "user-1",
    tokens: tuple[int, int] = (10, 5),
    events: int = 0,
    config: dict[str, Any] | None = None,
) -> str:
    """A run (finished unless told otherwise) with usage and `events` stream events."""
    run_id = new_id()
    async with db_session() as db:
        db.add(
            Run(
                id=run_id,
                tenant_id=tenant_id,
                thread_id=thread_id,
                agent=agent,
                status=status,
                input="hi",
                user_id=user_id,
                requests=1,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                total_tokens=sum(tokens),
                config=config,
                created_at=created_at,
                finished_at=finished_at
                if finished_at is not None or status == "pending"
                else created_at,
            )
        )
        await db.flush()
        for seq in range(1, events + 1):
            db.add(
                RunEvent(
                    run_id=run_id,
                    seq=seq,
                    tenant_id=tenant_id,
                    event="values",
                    data={},
                    created_at=created_at,
                )
            )
        await db.commit()
    return run_id


async def count(model: Any, **where: Any) -> int:
    """How many rows of a table match column == value conditions."""
    from sqlalchemy import func
    from sqlmodel import select

    stmt = select(func.count()).select_from(model)
    for column, value in where.items():
        stmt = stmt.where(getattr(model, column) == value)
    async with db_session() as db:
        return int((await db.exec(stmt)).one())


async def tenants() -> list[str]:
    """Every tenant id."""
    from sqlmodel import select

    async with db_session() as db:
        return list((await db.exec(select(Tenant.id))).all())


# --- subprocesses ----------------------------------------------------------------------------


@dataclass
class JobProcess:
    """A running `python -m aca_jobs <name>` subprocess."""

    process: asyncio.subprocess.Process
    log_path: Path

    async def wait(self) -> int:
        """Wait for the exit code (the test's own timeout bounds this)."""
        return await self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no cleanup code of the job runs."""
        self.process.send_signal(signal.SIGKILL)

    def log(self) -> str:
        """What the job wrote (its logging goes to stderr, merged here)."""
        return self.log_path.read_text()


async def start_job(name: str, db: JobDb, *, tag: str = "", **env: str) -> JobProcess:
    """Start the job as a child process on the test's database."""
    db.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = db.data_dir / f"job-{name}{tag}-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aca_jobs",
            name,
            cwd=ROOT,
            env=db.env(**env),
            stdout=log,
            stderr=log,
        )
    return JobProcess(process, log_path)


async def run_job(name: str, db: JobDb, **env: str) -> JobProcess:
    """Run the job to completion as a child process; fail with its log unless it exits 0."""
    job = await start_job(name, db, **env)
    code = await job.wait()
    assert code == 0, job.log()
    return job


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll an observable condition until it holds, failing after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)
