"""Publishing the outbox: through the Dapr sidecar in order, across outages, once per event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import stamina

from shared.core.retries import retry_counts
from shared.outbox import events
from shared.outbox.drain import drain
from shared.outbox.events import RUN_COMPLETED, RUN_CREATED, RUN_STARTED
from tests.fakes.dapr_sidecar import FakeDaprSidecar, running_sidecar
from tests.integration.events_support import record, tenant, until

__all__ = ["tenant"]

TYPES = (RUN_CREATED, RUN_STARTED, RUN_COMPLETED)


@pytest.fixture
def sidecar(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaprSidecar]:
    """A fake Dapr sidecar this process publishes through (its ports in the environment)."""
    from shared.core.settings import get_settings

    with running_sidecar() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        yield fake


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    """stamina's testing mode: a publish retry takes no time, with the same attempts."""
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


def _received(sidecar: FakeDaprSidecar, subjects: set[str]) -> dict[str, list[int]]:
    """The sequence numbers the sidecar accepted, per subject of ours, in arrival order."""
    seen: dict[str, list[int]] = {s: [] for s in subjects}
    for item in sidecar.published:
        event = json.loads(item.data)
        if event["subject"] in subjects:
            seen[event["subject"]].append(int(event["sequence"]))
    return seen


async def _three_runs(tenant: str) -> set[str]:
    """Three runs' events, interleaved: created, started, completed for each."""
    subjects = [str(uuid.uuid4()) for _ in range(3)]
    for type_ in TYPES:
        for subject in subjects:
            await record(tenant, subject, type_, run_id=subject)
    return set(subjects)


async def test_events_are_published_in_order_per_run_through_the_sidecar(
    tenant: str, sidecar: FakeDaprSidecar
) -> None:
    """Each run's events reach the pub/sub component and topic as CloudEvents, in seq order."""
    subjects = await _three_runs(tenant)
    await drain()
    assert _received(sidecar, subjects) == {s: [1, 2, 3] for s in subjects}
    ours = [p for p in sidecar.published if json.loads(p.data)["subject"] in subjects]
    assert {(p.pubsub_name, p.topic, p.data_content_type) for p in ours} == {
        ("pubsub", "agent-events", "application/cloudevents+json")
    }
    assert all(json.loads(p.data)["specversion"] == "1.0" for p in ours)


async def test_a_broker_outage_loses_no_event_and_keeps_the_order(
    tenant: str, sidecar: FakeDaprSidecar
) -> None:
    """While publishing fails nothing is marked published; once back, all arrive in order."""
    sidecar.publish_failing = True
    subjects = await _three_runs(tenant)
    report = await drain()
    assert report.publish_failures >= 1
    assert _received(sidecar, subjects) == {s: [] for s in subjects}
    later = str(uuid.uuid4())  # written during the outage too
    await record(tenant, later, RUN_CREATED)
    subjects.add(later)
    await drain()
    assert _received(sidecar, subjects) == {s: [] for s in subjects}
    sidecar.publish_failing = False

    async def all_published() -> bool:
        await drain()
        got = _received(sidecar, subjects)
        return all(len(v) == (1 if s == later else 3) for s, v in got.items())

    await until(all_published)
    expected = {s: [1] if s == later else [1, 2, 3] for s in subjects}
    assert _received(sidecar, subjects) == expected


async def test_a_transient_publish_failure_is_retried_within_the_drain(
    tenant: str, sidecar: FakeDaprSidecar
) -> None:
    """One UNAVAILABLE from the broker is retried at once (counted), not left for a later drain."""
    subject = str(uuid.uuid4())
    await record(tenant, subject, RUN_CREATED, run_id=subject)
    before = sum(n for name, n in retry_counts().items() if "publish" in name)
    sidecar.pubsub.fail_next = 1
    report = await drain()
    assert report.publish_failures == 0
    assert _received(sidecar, {subject}) == {subject: [1]}
    assert sum(n for name, n in retry_counts().items() if "publish" in name) == before + 1


async def test_two_concurrent_drainers_publish_each_event_once(
    tenant: str, sidecar: FakeDaprSidecar
) -> None:
    """Drainers racing on the same outbox claim rows by compare-and-set: no duplicates."""
    subjects = set()
    for _ in range(2):
        subjects |= await _three_runs(tenant)
    await asyncio.gather(drain(owner="drainer-a"), drain(owner="drainer-b"))
    await drain(owner="drainer-c")  # anything a claim race left for later
    assert _received(sidecar, subjects) == {s: [1, 2, 3] for s in subjects}


async def test_in_process_delivery_reaches_the_subscription_function(tenant: str) -> None:
    """Without a sidecar the drainer calls the subscribed HTTP function with the CloudEvent."""
    got: list[dict[str, Any]] = []

    async def handler(event: dict[str, Any]) -> None:
        got.append(event)

    subject = str(uuid.uuid4())
    event_id = await record(tenant, subject, RUN_CREATED, run_id=subject)
    events.subscribe(handler, types=[RUN_CREATED])
    try:
        await drain()
    finally:
        events.unsubscribe(handler)
    mine = [e for e in got if e["subject"] == subject]
    assert [e["id"] for e in mine] == [event_id]
    assert mine[0]["type"] == RUN_CREATED


async def test_the_subscription_drops_events_that_are_not_in_the_outbox(tenant: str) -> None:
    """A forged CloudEvent POSTed to the subscription route is dropped, never handled."""
    got: list[dict[str, object]] = []

    async def handler(event: dict[str, object]) -> None:
        got.append(event)

    forged = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/ascent/tenants/{tenant}",
        "type": RUN_COMPLETED,
        "subject": str(uuid.uuid4()),
        "data": {},
    }
    events.subscribe(handler)
    try:
        assert await events.receive_event(forged) == "DROP"
    finally:
        events.unsubscribe(handler)
    assert got == []


async def test_without_a_sidecar_or_a_handler_a_drain_marks_every_event_published(
    tenant: str,
) -> None:
    """In-process, with nothing subscribed, one drain records every due event as delivered."""
    from sqlalchemy import func, select

    from shared.db import direct
    from shared.outbox.drain import OUTBOX

    await _three_runs(tenant)
    report = await drain()

    def unpublished(tx: direct.Tx) -> int:
        count = select(func.count()).where(OUTBOX.c.published_at.is_(None))
        return int(tx.conn.scalar(count) or 0)

    assert (report.published, await direct.read(unpublished)) == (9, 0)
