"""In-process harness for the run-engine tests: the real HTTP functions over ASGI, a scripted model.

`api_app(...)` serves `function_app`'s real functions (as the dev host maps them,
local/devhost.py `build_asgi`) through httpx's ASGI transport, on a migrated database (a copy
of one migrated SQLite file, or the machine's Postgres), with one tenant and its API key and
QUEUE_BACKEND=inline, so background runs execute in this process too. The model is whatever
`use_model` installs: a `ScriptedModel` (agents.testing) or a `GateModel` that streams a
token and then waits until the test opens it (a run observably in progress).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents import Model, ModelProvider, ModelResponse
from agents.items import TResponseStreamEvent
from openai.types.responses import (
    Response,
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
)

from tests.conftest import POSTGRES_URL

PARTIAL = "Working on it"


class ScriptedProvider(ModelProvider):
    """Hands every agent the same model."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        """Return the model."""
        return self.model


def use_model(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    """Make every run of this process use `model` (the model seam, shared/platform/llm.py)."""
    from shared.platform import llm

    monkeypatch.setattr(llm, "get_model_provider", lambda: ScriptedProvider(model))


class GateModel(Model):
    """Streams the start of an answer, signals `streaming`, then waits until the run ends."""

    def __init__(self) -> None:
        self.streaming = asyncio.Event()

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Not used: the engine always streams."""
        raise AssertionError("the engine streams; get_response must not be called")

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Yield one text delta, signal it, then block until cancelled."""
        response = Response(
            id="resp_gate",
            created_at=0,
            model="gate",
            object="response",
            output=[],
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            status="in_progress",
        )
        message = ResponseOutputMessage(
            id="msg_gate", type="message", role="assistant", status="in_progress", content=[]
        )
        yield ResponseCreatedEvent(type="response.created", response=response, sequence_number=0)
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=message, output_index=0, sequence_number=1
        )
        yield ResponseTextDeltaEvent(
            type="response.output_text.delta",
            item_id="msg_gate",
            output_index=0,
            content_index=0,
            delta=PARTIAL,
            logprobs=[],
            sequence_number=2,
        )
        self.streaming.set()
        await asyncio.Event().wait()  # until the run is cancelled


class HoldModel(Model):
    """A model that holds every call until `release` is set, then answers as `inner` does.

    `entered` counts the calls that reached the model: how many runs really started.
    """

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.entered = 0
        self.reached = asyncio.Event()

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Not used: the engine always streams."""
        raise AssertionError("the engine streams; get_response must not be called")

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Wait for `release`, then stream the inner model's answer."""
        self.entered += 1
        self.reached.set()
        await self.release.wait()
        async for event in self.inner.stream_response(*args, **kwargs):
            yield event


@dataclass
class Api:
    """An authenticated client of the in-process API and the tenant it acts for."""

    client: httpx.AsyncClient
    tenant_id: str

    async def new_thread(self) -> str:
        """Create a thread; its id."""
        response = await self.client.post("/threads", json={})
        assert response.status_code == 200, response.text
        return str(response.json()["thread_id"])


_TEMPLATES: dict[str, Path] = {}


async def migrated_sqlite(data_dir: Path, cache_dir: Path) -> None:
    """Put a migrated SQLite database in `data_dir` (a copy of one migrated once per session)."""
    from shared.core.settings import get_settings
    from shared.db.engine import get_engine
    from shared.db.migrate import migrate

    template = _TEMPLATES.get("sqlite")
    if template is None or not await asyncio.to_thread(template.exists):
        await migrate(get_engine())
        await get_engine().dispose()
        template = cache_dir / "template.db"
        await asyncio.to_thread(shutil.copy, get_settings().data_dir / "ascent.db", template)
        _TEMPLATES["sqlite"] = template
        return

    def copy() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, data_dir / "ascent.db")

    await asyncio.to_thread(copy)


_PG_MIGRATED = False


@asynccontextmanager
async def api_app(
    backend: str | None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cache_dir: Path,
    **env: str,
) -> AsyncIterator[Api]:
    """The API in this process on SQLite (`backend` None) or Postgres, one tenant, its key."""
    global _PG_MIGRATED
    from local.devhost import build_asgi
    from shared.core.settings import get_settings
    from shared.db import repo
    from shared.db.engine import db_session, get_engine
    from shared.db.migrate import migrate
    from shared.platform.queues import reset_queue_backends
    from shared.security.auth import issue_api_key

    settings_env = {
        "QUEUE_BACKEND": "inline",
        "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
        "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
        "ASCENT_EVENTS_PUBLISH": "off",
        **env,
    }
    if backend == "postgres":
        assert POSTGRES_URL is not None
        settings_env["DATABASE_URL"] = POSTGRES_URL
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reset_queue_backends()
    if backend == "postgres":
        if not _PG_MIGRATED:
            await migrate(get_engine())
            _PG_MIGRATED = True
    else:
        await migrated_sqlite(get_settings().data_dir, cache_dir)
    async with db_session() as db:
        tenant = await repo.create_tenant(session=db, name="engine-test")
        key = await issue_api_key(session=db, tenant_id=tenant.id)
        await db.commit()
    transport = httpx.ASGITransport(app=build_asgi())
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://ascent.test/api",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as client:
        yield Api(client=client, tenant_id=tenant.id)
    from shared.runs.dispatch import wait_for_background

    await asyncio.wait_for(wait_for_background(), timeout=30)
    await get_engine().dispose()


def sse_events(text: str) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of an SSE body (`event:`/`data:` lines; data as JSON when it is)."""
    import json

    event = "message"
    for block in text.split("\n\n"):
        data = None
        for line in block.splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                raw = line[5:].strip()
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = raw
        if data is not None:
            yield event, data
        event = "message"
