"""Cancelling a run while its model is mid-answer, through the cancel flag any instance sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

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

from shared.api import protocol
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.runs import engine as runs
from shared.security.auth import Principal

PARTIAL = "Working on it"


class BlockingModel(Model):
    """Streams one text delta, then waits until cancelled: a model observably mid-answer."""

    def __init__(self) -> None:
        self.streaming = asyncio.Event()

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Not used: executed runs stream."""
        raise AssertionError("execute_run streams; get_response must not be called")

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Yield the start of an answer, signal it, then block forever."""
        response = Response(
            id="resp_block",
            created_at=0,
            model="blocking",
            object="response",
            output=[],
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            status="in_progress",
        )
        message = ResponseOutputMessage(
            id="msg_block", type="message", role="assistant", status="in_progress", content=[]
        )
        yield ResponseCreatedEvent(type="response.created", response=response, sequence_number=0)
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=message, output_index=0, sequence_number=1
        )
        yield ResponseTextDeltaEvent(
            type="response.output_text.delta",
            item_id="msg_block",
            output_index=0,
            content_index=0,
            delta=PARTIAL,
            logprobs=[],
            sequence_number=2,
        )
        self.streaming.set()
        await asyncio.Event().wait()


class BlockingProvider(ModelProvider):
    """Hands every agent the blocking model."""

    def __init__(self, model: BlockingModel) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        """Return the blocking model."""
        return self.model


@pytest.fixture
async def principal() -> AsyncIterator[Principal]:
    """A principal of a fresh tenant in a migrated SQLite database."""
    await migrate(get_engine())
    async with db_session() as db:
        tenant = await repo.create_tenant(session=db, name="cancel-co")
        await db.commit()
    yield Principal(tenant_id=tenant.id, key_id="key-test")
    await get_engine().dispose()


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> BlockingModel:
    """Runs execute on the blocking model; creating a run does not start it by itself."""
    blocking = BlockingModel()
    monkeypatch.setattr(runs, "get_model_provider", lambda: BlockingProvider(blocking))

    async def hold(run_id: str) -> None:
        """The test executes the run itself, so it owns the task."""

    monkeypatch.setattr(protocol, "enqueue_run", hold)
    return blocking


class TestCancelMidRun:
    async def test_cancel_stops_a_streaming_run_and_keeps_its_partial_output(
        self, principal: Principal, model: BlockingModel
    ) -> None:
        """A run cancelled mid-answer ends interrupted/cancelled with what it had produced."""
        run = await protocol.create_run(
            principal, protocol.RunCreate(agent_id="assistant", input="tell me a long story")
        )
        task = asyncio.create_task(runs.execute_run(run.id))
        await asyncio.wait_for(model.streaming.wait(), timeout=30)
        await protocol.cancel_run(principal, run.id)
        await asyncio.wait_for(task, timeout=30)
        ended = await protocol.get_run(principal, run.id)
        assert (ended.status, ended.error, ended.output) == ("interrupted", "cancelled", PARTIAL)

    async def test_cancelled_run_frees_its_thread_and_closes_its_stream(
        self, principal: Principal, model: BlockingModel
    ) -> None:
        """After a mid-run cancel the thread is idle again and the stream ends with `end`."""
        thread_id = (await protocol.create_thread(principal, protocol.ThreadCreate()))["thread_id"]
        run = await protocol.create_run(
            principal,
            protocol.RunCreate(agent_id="assistant", input="tell me a long story"),
            thread_id=thread_id,
        )
        task = asyncio.create_task(runs.execute_run(run.id))
        await asyncio.wait_for(model.streaming.wait(), timeout=30)
        await protocol.cancel_run(principal, run.id)
        await asyncio.wait_for(task, timeout=30)
        thread = await protocol.get_thread(principal, thread_id)
        events = await protocol.run_events_json(principal, run.id)
        assert thread["status"] == "idle"
        assert [e["event"] for e in events][-1] == "end"
        assert any(PARTIAL in str(e["data"]) for e in events if e["event"] == "messages")
