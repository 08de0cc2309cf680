"""Helpers of the Agent Protocol end-to-end tests: SSE parsing and polling with a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Event:
    """One received Server-Sent Event."""

    id: str | None
    event: str
    data: Any


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """Parse an SSE response into events (comments and keep-alives skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "event" in fields:
                yield Event(
                    fields.get("id"), fields["event"], json.loads(fields.get("data", "null"))
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")


def strip_ids(value: Any) -> Any:
    """Event data without run/thread ids, for comparing two runs' streams."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in ("run_id", "thread_id")}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def poll(check: Callable[[], Any], what: str) -> Any:
    """Call `check` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_status(client: httpx.Client, run_id: str) -> str:
    """The current status of a run."""
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def wait_status(client: httpx.Client, run_id: str, *statuses: str) -> str:
    """Poll a run until its status is one of `statuses`; return it."""
    return str(
        poll(lambda: (s := run_status(client, run_id)) in statuses and s, f"run in {statuses}")
    )


def new_thread(client: httpx.Client, **body: Any) -> str:
    """Create a thread and return its id."""
    response = client.post("/threads", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])
