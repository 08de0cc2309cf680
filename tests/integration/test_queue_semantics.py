"""Storage-Queue semantics of both queue backends (embedded SQL queue, Azure on Azurite).

Visibility timeout, dequeue count, pop receipts and the dev host's poison handling must behave
alike on both, since the dev host drives either exactly as the Functions host drives Azure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import pytest_asyncio

from local.queue_host import QueueListener, QueueTrigger
from shared.db.engine import get_engine
from shared.db.migrate import migrate
from shared.platform.queues import (
    QueueBackend,
    QueueOptions,
    StaleReceipt,
    decode_message,
    get_queue_backend,
    reset_queue_backends,
    send_text,
)
from tests.queue_support import azurite, eventually

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["embedded", "azurite"])
def backend_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """QUEUE_BACKEND set to each backend in turn (Azurite started for the azure one)."""
    reset_queue_backends()
    if request.param == "embedded":
        monkeypatch.setenv("QUEUE_BACKEND", "embedded")
        yield "embedded"
    else:
        with azurite(tmp_path / "azurite") as connection:
            monkeypatch.setenv("QUEUE_BACKEND", "azure")
            monkeypatch.setenv("AzureWebJobsStorage", connection)
            yield "azure"
    reset_queue_backends()


@pytest_asyncio.fixture
async def backend(backend_env: str) -> AsyncIterator[QueueBackend]:
    """The configured backend, with the schema in place, closed afterwards."""
    await migrate(get_engine())
    queue = get_queue_backend()
    yield queue
    await queue.close()
    await get_engine().dispose()


async def test_received_message_is_hidden_until_its_visibility_timeout(
    backend: QueueBackend,
) -> None:
    """A received message is invisible, then reappears with its dequeue count raised."""
    await backend.ensure_queue("vis-q")
    await send_text("vis-q", "hello")
    first = await backend.receive("vis-q", max_messages=4, visibility_timeout=1)
    assert [m.dequeue_count for m in first] == [1]
    assert await backend.receive("vis-q", max_messages=4, visibility_timeout=1) == []

    async def again() -> Any:
        return await backend.receive("vis-q", max_messages=4, visibility_timeout=30)

    second = await eventually(again, "the message to reappear")
    assert [m.dequeue_count for m in second] == [2]
    assert decode_message(second[0].content, "base64") == b"hello"
    with pytest.raises(StaleReceipt):
        await backend.delete("vis-q", first[0])
    await backend.delete("vis-q", second[0])
    assert await backend.count("vis-q") == 0


async def test_failing_message_goes_to_poison_after_max_dequeue_count(
    backend: QueueBackend,
) -> None:
    """A function that always fails sees the message maxDequeueCount times, then it is poisoned."""
    attempts: list[int] = []

    def always_fails(msg: func.QueueMessage) -> None:
        attempts.append(msg.dequeue_count or 0)
        raise RuntimeError("boom")

    trigger = QueueTrigger("fails", "poison-q", "AzureWebJobsStorage", "msg", always_fails)
    options = QueueOptions(
        batch_size=4, new_batch_threshold=2, max_polling_interval=0.2, max_dequeue_count=3
    )
    await backend.ensure_queue("poison-q")
    await send_text("poison-q", json.dumps({"n": 1}))
    listener = QueueListener(trigger, backend=backend, options=options, message_lease=5)
    task = asyncio.create_task(listener.run())
    try:

        async def poisoned() -> list[str]:
            return await backend.peek_all("poison-q-poison")

        moved = await eventually(poisoned, "the poison queue to receive the message")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert attempts == [1, 2, 3]
    assert [decode_message(m, "base64") for m in moved] == [b'{"n": 1}']
    assert await backend.count("poison-q") == 0


async def test_function_receives_decoded_body_and_message_is_deleted(
    backend: QueueBackend,
) -> None:
    """The function gets the decoded body bytes and metadata; success deletes the message."""
    seen: list[func.QueueMessage] = []

    async def records(msg: func.QueueMessage) -> None:
        seen.append(msg)

    trigger = QueueTrigger("records", "ok-q", "AzureWebJobsStorage", "msg", records)
    options = QueueOptions(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2)
    await backend.ensure_queue("ok-q")
    await send_text("ok-q", '{"run_id": "r", "tenant_id": "t"}')
    listener = QueueListener(trigger, backend=backend, options=options, message_lease=5)
    task = asyncio.create_task(listener.run())
    try:

        async def emptied() -> bool:
            return bool(seen) and await backend.count("ok-q") == 0

        await eventually(emptied, "the message to be processed and deleted")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(seen) == 1
    assert seen[0].get_body() == b'{"run_id": "r", "tenant_id": "t"}'
    assert seen[0].dequeue_count == 1 and seen[0].id
    assert seen[0].insertion_time is not None


async def test_the_driver_keeps_batch_size_plus_threshold_messages_in_flight(
    backend: QueueBackend,
) -> None:
    """With batchSize 32 and newBatchThreshold 100, 100 slow messages all run at once: the
    driver fetches again whenever no more than the threshold run, not one batch at a time."""
    started: list[str] = []
    everyone = asyncio.Event()
    release = asyncio.Event()

    async def slow(msg: func.QueueMessage) -> None:
        started.append(msg.id)
        if len(started) == 100:
            everyone.set()
        await release.wait()

    trigger = QueueTrigger("slow", "many-q", "AzureWebJobsStorage", "msg", slow)
    options = QueueOptions(batch_size=32, new_batch_threshold=100, max_polling_interval=0.2)
    await backend.ensure_queue("many-q")
    for n in range(100):
        await send_text("many-q", json.dumps({"n": n}))
    listener = QueueListener(trigger, backend=backend, options=options, message_lease=30)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(everyone.wait(), timeout=60)
        assert len(set(started)) == 100
        release.set()

        async def emptied() -> bool:
            return await backend.count("many-q") == 0

        await eventually(emptied, "every message to be deleted")
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
