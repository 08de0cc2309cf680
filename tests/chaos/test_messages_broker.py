"""Duplicate and poison run messages, and the broker down during a burst, on a real host.

One dev host (embedded queue on SQLite, a slow loopback model) publishes its domain events
through a fake Dapr sidecar (tests/fakes/dapr_sidecar.py, the broker's stand-in); this test
process writes extra messages to the host's queue as another producer would.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.fake_model import running_fake_model
from tests.chaos.recovery_helpers import SHORT_LEASES, TERMINAL, aclient, model_env, report, until
from tests.conftest import DevHost, start_devhost
from tests.fakes.dapr_sidecar import FakeDaprSidecar, running_sidecar

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BURST = 12
# The outage is 30 s against the 2 s first retry (15 first-retry delays, 4 doublings);
# scaled down with ASCENT_EVENTS_RETRY_SECONDS=0.2, the outage lasts until the host's publishes
# were refused over the same 4 doublings of backoff, observed at the sidecar.
REFUSALS_DURING_OUTAGE = 4


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DevHost, FakeDaprSidecar, Path]]:
    """The host, its sidecar and its data dir (short leases, failed messages retried at once)."""
    data = tmp_path_factory.mktemp("chaos-messages")
    with running_sidecar() as sidecar, running_fake_model(latency=1.5) as model:
        env = {
            **model_env(model),
            **SHORT_LEASES,
            **sidecar.env(),
            "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
        }
        host = start_devhost(data, extra_env=env)
        try:
            yield host, sidecar, data
        finally:
            host.stop()


def _sql(data: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data / "ascent.db") as db:
        return list(db.execute(query, params).fetchall())


def _send(data: Path, monkeypatch: pytest.MonkeyPatch, texts: list[str]) -> None:
    """Put plain-text messages on the host's `agent-runs` queue, encoded as the host reads them."""
    from shared.core.settings import get_settings
    from shared.platform.queues import RUNS_QUEUE, close_queue_backend, send_text

    monkeypatch.setenv("ASCENT_DATA_DIR", str(data))
    get_settings.cache_clear()

    async def send() -> None:
        from shared.db.direct import aclose_direct

        try:
            for text in texts:
                await send_text(RUNS_QUEUE, text)
        finally:
            await close_queue_backend()
            await aclose_direct()

    asyncio.run(send())


def _run_message(run_id: str) -> str:
    return json.dumps({"run_id": run_id, "tenant_id": "dev"})


def test_duplicate_messages_of_a_run_execute_it_once(
    rig: tuple[DevHost, FakeDaprSidecar, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three more messages for a background run while it waits on its model: it ends once,
    with one `end` event, and every message is acknowledged."""
    host, _, data = rig

    async def scenario() -> str:
        async with aclient(host) as c:
            created = await c.post("/runs", json={"agent_id": "assistant", "input": "hi"})
            assert created.status_code == 200, created.text
            return str(created.json()["run_id"])

    run_id = asyncio.run(scenario())
    _send(data, monkeypatch, [_run_message(run_id)] * 3)

    async def settled() -> bool:
        done = _sql(data, "SELECT status FROM runs WHERE id = ?", run_id)[0][0]
        left = _sql(data, "SELECT count(*) FROM queue_messages WHERE queue = 'agent-runs'")
        return done == "success" and left[0][0] == 0

    asyncio.run(until(settled, "the run to end and every message to be acknowledged"))
    ends = _sql(data, "SELECT count(*) FROM run_events WHERE run_id = ? AND event = 'end'", run_id)
    assert ends[0][0] == 1
    terminal = _sql(
        data,
        "SELECT count(*) FROM outbox_events WHERE subject = ? AND type IN (?, ?, ?)",
        run_id,
        *TERMINAL,
    )
    assert terminal[0][0] == 1
    report("duplicate_messages", runs=1, duplicates=3, executions=1, five_xx=0)


def test_a_poison_message_is_dead_lettered_and_others_keep_flowing(
    rig: tuple[DevHost, FakeDaprSidecar, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that is not a run message fails maxDequeueCount (5) times and goes to
    `agent-runs-poison`; a message naming no run is acknowledged; a run submitted after them
    succeeds meanwhile (no head-of-line blocking)."""
    host, _, data = rig
    _send(data, monkeypatch, ["not a run message", _run_message("no-such-run")])

    async def scenario() -> str:
        async with aclient(host) as c:
            created = await c.post("/runs", json={"agent_id": "assistant", "input": "hi"})
            assert created.status_code == 200, created.text
            run_id = str(created.json()["run_id"])
            waited = await c.get(f"/runs/{run_id}/wait")
            assert waited.json()["run"]["status"] == "success", waited.text
            return run_id

    asyncio.run(scenario())

    async def dead_lettered() -> bool:
        return "moved to agent-runs-poison after 5 dequeues" in host.log_path.read_text()

    asyncio.run(until(dead_lettered, "the poison message to be dead-lettered"))
    left = _sql(data, "SELECT count(*) FROM queue_messages WHERE queue = 'agent-runs'")
    assert left[0][0] == 0
    report("poison_messages", poison=1, dead_lettered=1, unknown_runs_acknowledged=1, five_xx=0)


def test_a_broker_outage_during_a_burst_loses_no_event_and_keeps_each_runs_order(
    rig: tuple[DevHost, FakeDaprSidecar, Path],
) -> None:
    """With the broker down while a burst of background runs executes, nothing is published;
    back up, every event the outbox holds for the burst arrives once, in seq order per run."""
    host, sidecar, data = rig
    sidecar.publish_failing = True
    refused_before = sidecar.calls["PublishEvent"]
    started = time.monotonic()

    async def burst() -> list[str]:
        async with aclient(host) as c:
            made = await asyncio.gather(
                *(
                    c.post("/runs", json={"agent_id": "assistant", "input": f"burst {i}"})
                    for i in range(BURST)
                )
            )
            assert {m.status_code for m in made} == {200}
            return [str(m.json()["run_id"]) for m in made]

    run_ids = asyncio.run(burst())

    async def burst_done_and_refused() -> bool:
        statuses = _sql(data, "SELECT id, status FROM runs WHERE status = 'success'")
        ended = len({r for r, _ in statuses} & set(run_ids))
        refused = sidecar.calls["PublishEvent"] - refused_before
        return ended == BURST and refused >= REFUSALS_DURING_OUTAGE

    asyncio.run(until(burst_done_and_refused, "the burst to end while publishes are refused"))
    ours = set(run_ids)

    def received() -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {r: [] for r in run_ids}
        for item in sidecar.published:
            event = json.loads(item.data)
            if event["subject"] in ours:
                seen[event["subject"]].append(int(event["sequence"]))
        return seen

    assert received() == {r: [] for r in run_ids}
    outage = time.monotonic() - started
    sidecar.publish_failing = False
    stored = {
        r: [s for (s,) in _sql(data, "SELECT seq FROM outbox_events WHERE subject = ?", r)]
        for r in run_ids
    }

    async def all_published() -> bool:
        got = received()
        return all(len(got[r]) >= len(stored[r]) for r in run_ids)

    asyncio.run(until(all_published, "every held event to be published after the outage"))
    got = received()
    assert got == {r: sorted(stored[r]) for r in run_ids}, (got, stored)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in got.values())
    report(
        "broker_outage",
        runs=BURST,
        outage_s=round(outage, 2),
        events=sum(len(v) for v in stored.values()),
        lost=0,
        out_of_order=0,
        five_xx=0,
    )
