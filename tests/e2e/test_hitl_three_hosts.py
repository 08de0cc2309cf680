"""Pause on one dev host, approve through a second, complete on a third (one data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DevHost, start_devhost
from tests.e2e.hitl_helpers import (
    decide,
    pending_review,
    refund_rows,
    start_paused_run,
    thread_messages,
)
from tests.e2e.protocol_helpers import run_status, wait_status


@pytest.fixture
def three_hosts(tmp_path: Path) -> Iterator[tuple[list[DevHost], Path]]:
    """Three dev host processes sharing one SQLite data dir and one API key."""
    data = tmp_path / "shared"
    first = start_devhost(data)
    hosts = [first]
    try:
        for _ in range(2):
            hosts.append(start_devhost(data, extra_env={"ASCENT_DEV_API_KEY": first.api_key}))
        yield hosts, data
    finally:
        for host in hosts:
            host.stop()


def test_approval_on_another_process_runs_the_tool_exactly_once(
    three_hosts: tuple[list[DevHost], Path],
) -> None:
    """Paused on host 1 (then stopped), approved on host 2, observed complete on host 3 (the
    run message goes to whichever live host takes it); the refund exists exactly once and the
    history holds one call and one output of the tool."""
    (first, second, third), data = three_hosts
    key = first.api_key
    with first.client(key) as one:
        run = start_paused_run(one)
        assert run_status(one, run["run_id"]) == "interrupted"
    first.stop()
    assert refund_rows(data) == 0
    with second.client(key) as two:
        review = pending_review(two, run["run_id"])
        assert (review["tool"], review["arguments"]) == ("issue_refund", {"amount": 40.0})
        assert decide(two, review["review_id"], "approve", reviewer="ops@example.com").is_success
    with third.client(key) as three:
        assert wait_status(three, run["run_id"], "success", "error") == "success"
        done = three.get(f"/runs/{run['run_id']}").json()
        assert done["output"].startswith("Refund of 40.00 issued")
        items = thread_messages(three, run["thread_id"])
    assert refund_rows(data, run["run_id"]) == 1
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    calls = [i for i in items if i.get("type") == "function_call"]
    assert (len(calls), len(outputs)) == (1, 1)
