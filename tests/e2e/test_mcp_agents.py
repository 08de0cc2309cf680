"""Agents calling tools on real MCP server processes (shared/agents/mcp_servers.py).

A tiny shop server (tests/fakes/mcp_shop.py) and the shared tool server (`python -m
mcp_tools`) run as processes started here; dev hosts declare them through
ASCENT_MCP_SERVERS and ASCENT_MCP_TOOLS_URL, with header secrets from ASCENT_MCP_SECRETS.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.devhost_process import free_port
from tests.conftest import DevHost, start_devhost
from tests.e2e.hitl_helpers import decide, pending_review, run_json, thread_messages
from tests.e2e.protocol_helpers import Event, new_thread, poll, sse_events, wait_status

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHOP_KEY = "shop-secret-0123456789"
TOOLS_KEY = "tools-secret-0123456789"


@dataclass
class Server:
    """An MCP server process started by a test."""

    process: subprocess.Popen[bytes]
    url: str
    calls: Path

    def stop(self) -> None:
        """Stop the process."""
        # Killed, not terminated: a graceful stop would wait for the hanging tool's request.
        self.process.kill()
        self.process.wait(timeout=10)

    def charges(self) -> list[dict[str, Any]]:
        """Every `charge_card` call the shop server received."""
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_server(module: str, tmp: Path, env: dict[str, str]) -> Server:
    """Start `python -m module` on a free port and wait until it accepts connections."""
    port = free_port()
    calls = tmp / f"calls-{port}.jsonl"
    args = ["--port", str(port)] + (["--calls", str(calls)] if module.endswith("shop") else [])
    log = (tmp / f"{module}-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**_base_env(), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    poll(lambda: _listening(port), f"{module} listening")
    return Server(process, f"http://127.0.0.1:{port}/mcp", calls)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ASCENT_")}


def shop_declaration(shop_url: str, gone_url: str) -> str:
    """ASCENT_MCP_SERVERS: the assistant uses the shop, tech support a server that is down."""
    tools = {"store_hours": "read", "charge_card": "spend", "slow_report": "read"}
    return json.dumps(
        {
            "assistant": [
                {
                    "name": "shop",
                    "url": shop_url,
                    "headers": {"X-Shop-Key": "shop"},
                    "tools": tools,
                    "timeout_seconds": 2,
                }
            ],
            "tech_support": [{"name": "gone", "url": gone_url, "timeout_seconds": 2}],
        }
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shop MCP server process."""
    server = start_server(
        "tests.fakes.mcp_shop", tmp_path_factory.mktemp("shop"), {"SHOP_KEY": SHOP_KEY}
    )
    yield server
    server.stop()


def host_env(shop: Server, mode: str = "pooled") -> dict[str, str]:
    """A dev host's settings declaring the shop (and a server nobody listens on)."""
    gone = f"http://127.0.0.1:{free_port()}/mcp"
    return {
        "ASCENT_MCP_SERVERS": shop_declaration(shop.url, gone),
        "ASCENT_MCP_SECRETS": json.dumps({"shop": SHOP_KEY}),
        "ASCENT_MCP_CONNECTIONS": mode,
    }


@pytest.fixture(scope="module", params=["pooled", "per_run"])
def host(
    request: pytest.FixtureRequest, shop: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host using the shop, with pooled or per-run MCP connections."""
    started = start_devhost(
        tmp_path_factory.mktemp("mcp-host"), extra_env=host_env(shop, request.param)
    )
    yield started
    started.stop()


def run_to_end(client: httpx.Client, agent: str, text: str) -> dict[str, Any]:
    """Start a run on a new thread and wait until it ends or pauses; return it."""
    thread_id = new_thread(client)
    created = client.post(f"/threads/{thread_id}/runs", json={"agent_id": agent, "input": text})
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    wait_status(client, run_id, "success", "error", "timeout", "interrupted")
    return run_json(client, run_id)


def run_events(client: httpx.Client, run_id: str) -> list[Event]:
    """A finished run's stored events, replayed."""
    with client.stream("GET", f"/runs/{run_id}/stream") as response:
        return list(sse_events(response))


def mine(shop: Server, run_id: str) -> list[dict[str, Any]]:
    """The shop's `charge_card` calls made by one run (its idempotency keys name the run)."""
    return [c for c in shop.charges() if str(c["key"]).startswith(f"{run_id}/")]


def test_a_read_tool_on_an_mcp_server_answers_the_run(host: DevHost) -> None:
    """A read tool of the shop runs without approval and its output is the run's answer."""
    with host.client() as client:
        run = run_to_end(client, "assistant", "Please use store_hours for S123")
    assert run["status"] == "success", run
    assert run["output"] == "Store S123 opens 09:00-17:00."


def test_the_shared_tool_server_serves_the_demo_agents(tmp_path: Path) -> None:
    """With ASCENT_MCP_TOOLS_URL set, the assistant's calculator runs on `python -m mcp_tools`,
    which refuses requests without its key."""
    tools = start_server("mcp_tools", tmp_path, {"ASCENT_MCP_TOOLS_TOKEN": TOOLS_KEY})
    try:
        assert httpx.post(tools.url, json={}).status_code == 401
        started = start_devhost(
            tmp_path / "host",
            extra_env={"ASCENT_MCP_TOOLS_URL": tools.url, "ASCENT_MCP_TOOLS_TOKEN": TOOLS_KEY},
        )
        try:
            with started.client() as client:
                run = run_to_end(client, "assistant", "Please calculate 12 * (3 + 4)")
                items = thread_messages(client, run["thread_id"])
        finally:
            started.stop()
    finally:
        tools.stop()
    assert (run["status"], run["output"]) == ("success", "12 * (3 + 4) = 84")
    assert [i["name"] for i in items if i.get("type") == "function_call"] == ["calculate"]


def test_a_spend_tool_pauses_is_approved_on_another_host_and_runs_once(
    shop: Server, tmp_path: Path
) -> None:
    """A spend tool of the shop pauses the run without calling the server; approved on a
    second host (the first stopped), the run resumes there and the tool runs exactly once,
    with the run's idempotency key."""
    data = tmp_path / "shared"
    first = start_devhost(data, extra_env=host_env(shop))
    second: DevHost | None = None
    try:
        with first.client() as one:
            paused = run_to_end(one, "assistant", "Please use charge_card for 25")
        assert paused["status"] == "interrupted", paused
        first.stop()
        assert mine(shop, paused["run_id"]) == []
        second = start_devhost(
            data, extra_env={**host_env(shop), "ASCENT_DEV_API_KEY": first.api_key}
        )
        with second.client(first.api_key) as two:
            review = pending_review(two, paused["run_id"])
            assert (review["tool"], review["arguments"]) == ("charge_card", {"amount": 25.0})
            assert decide(two, review["review_id"], "approve").is_success
            assert wait_status(two, paused["run_id"], "success", "error") == "success"
            done = run_json(two, paused["run_id"])
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert done["output"] == "Charged 25.00 to the card."
    charged = mine(shop, paused["run_id"])
    assert [c["amount"] for c in charged] == [25.0]


def test_a_server_that_is_down_ends_the_run_with_a_clear_error(host: DevHost) -> None:
    """An agent whose MCP server is down ends `error`, naming the server, with an error event."""
    with host.client() as client:
        run = run_to_end(client, "tech_support", "I see error E404")
        events = run_events(client, run["run_id"])
    assert run["status"] == "error", run
    assert run["error"].startswith("MCP server 'gone' "), run["error"]
    errors = [e.data for e in events if e.event == "error"]
    assert errors == [{"error": "RunError", "message": run["error"]}]


def test_a_server_that_hangs_times_out_with_a_clear_error(host: DevHost) -> None:
    """A tool call the server never answers ends the run `error` after the declared timeout,
    saying which server and tool; the run's events keep the model's call, and the thread stays
    usable (the next run on it succeeds)."""
    with host.client() as client:
        run = run_to_end(client, "assistant", "Please use slow_report for Q3")
        events = run_events(client, run["run_id"])
        created = client.post(
            f"/threads/{run['thread_id']}/runs",
            json={"agent_id": "assistant", "input": "Please use store_hours for S123"},
        )
        assert created.status_code == 200, created.text
        assert wait_status(client, created.json()["run_id"], "success", "error") == "success"
    assert run["status"] == "error", run
    assert run["error"] == "MCP server 'shop' did not answer 'slow_report' within 2s"
    assert [e.data["message"] for e in events if e.event == "error"] == [run["error"]]
    assert any("slow_report" in json.dumps(e.data) for e in events if e.event != "error")


def test_a_tool_error_from_the_server_ends_the_run_with_a_clear_error(host: DevHost) -> None:
    """A tool the server answers with an error ends the run `error` with the server's message."""
    with host.client() as client:
        run = run_to_end(client, "assistant", "Please use store_hours for S000")
    assert run["status"] == "error", run
    assert run["error"].startswith("MCP server 'shop' tool 'store_hours' failed: "), run["error"]
    assert "S000 is closed for good" in run["error"]
