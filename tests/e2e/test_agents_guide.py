"""Agent developers' agents, served: docs/agents.md run as written, and the SDK features.

Each ```bash block of the guide runs in order in bash, in the checkout, with AGENTS_DIR a
temporary folder outside the repo. Two lines are stood in for, and checked to be in the guide
verbatim: the dev host command (started here by the test launcher with the same path and
`--reload`, on a free port) and the line reading the dev key (the launcher's key and URL are
given instead). The host also serves examples/features.py (ASCENT_AGENTS=greeter,cards,
examples.features), so the SDK feature tests share it: one dev host for the module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DevHost
from tests.e2e.protocol_helpers import new_thread, sse_events

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "agents.md").read_text()
DEVHOST = 'ASCENT_AGENTS=greeter,cards PYTHONPATH="$AGENTS_DIR" python -m local.devhost --reload'
RELOAD_DEADLINE_SECONDS = 120.0
KEY_LINE = "KEY=$(cat .ascent/dev_api_key); API=http://127.0.0.1:7071/api"


def bash_blocks() -> list[str]:
    """The guide's ```bash blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```$", GUIDE, flags=re.S | re.M)


@dataclass
class Walk:
    """The guide's folder, the served host, and what each block printed."""

    agents_dir: Path
    host: DevHost
    outputs: list[str]


def sh(script: str, env: dict[str, str]) -> str:
    """Run a block in bash in the checkout; its stdout (fails with stderr on a non-zero exit)."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    """Run the guide's blocks in order, serving the agents where it says to."""
    from local.devhost_process import spawn, wait_healthy

    agents_dir = tmp_path_factory.mktemp("my-agents")
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(agents_dir.parent),
    }
    outputs: list[str] = []
    host: DevHost | None = None
    try:
        for block in bash_blocks():
            script = block.replace('export AGENTS_DIR="$HOME/my-agents"', "")
            env["AGENTS_DIR"] = str(agents_dir)
            if DEVHOST in script:
                script = script.replace(DEVHOST, "")
                host = spawn(
                    tmp_path_factory.mktemp("guide-host"),
                    env={
                        "ASCENT_ENV": "test",
                        "ASCENT_AGENTS": "greeter,cards,examples.features",
                        "PYTHONPATH": str(agents_dir),
                    },
                    extra_args=["--reload"],
                )
                wait_healthy(host, poll=0.1)
            if KEY_LINE in script:
                assert host is not None, "the guide calls the host before serving it"
                script = script.replace(KEY_LINE, "")
                env.update(KEY=host.api_key, API=host.base_url)
            outputs.append(sh(script, env))
        assert host is not None, "the guide never serves the agents"
        yield Walk(agents_dir, host, outputs)
    finally:
        if host is not None:
            host.stop()


def test_the_guide_states_the_commands_the_test_stands_in_for() -> None:
    """The dev host and key lines the test replaces are in the guide verbatim."""
    assert DEVHOST in GUIDE and KEY_LINE in GUIDE
    assert 'export AGENTS_DIR="$HOME/my-agents"' in GUIDE


def test_the_generator_writes_an_agent_and_its_passing_test(walk: Walk) -> None:
    """`python -m ascent new` wrote both files; the guide's pytest run passed them."""
    assert sorted(p.name for p in walk.agents_dir.glob("*.py")) == [
        "cards.py",
        "greeter.py",
        "test_greeter.py",
    ]
    assert "1 passed" in walk.outputs[1]


def test_check_lists_the_served_catalog(walk: Walk) -> None:
    """`python -m ascent check` with the guide's setting lists exactly its agents."""
    assert walk.outputs[3] == "catalog from greeter, cards: greeter, card\n"


def test_the_agents_answer_over_http(walk: Walk) -> None:
    """The tool reads the run context; the card's schema and structured answer are served."""
    run, schemas, waited = json_documents(walk.outputs[4])
    assert re.fullmatch(r"You are \S+ of tenant dev\.", run["output"]), run
    structured = schemas["output_schema"]["properties"]["structured_response"]
    assert set(structured["properties"]) == {"style", "formal", "message"}
    assert waited["values"]["structured_response"]["formal"] is True


def json_documents(text: str) -> list[Any]:
    """The JSON documents curl printed one after another (without newlines between them)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


# --- the Agents SDK's features, served (examples/features.py) ---------------------------------


def run(client: httpx.Client, agent: str, text: str, **body: Any) -> dict[str, Any]:
    """Run an agent on the simple route; its response body."""
    response = client.post(f"/agents/{agent}/runs", json={"input": text, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_catalog_is_the_configured_modules(walk: Walk) -> None:
    """GET /agents lists exactly the agents of the modules ASCENT_AGENTS names, in order."""
    with walk.host.client() as client:
        names = [a["name"] for a in client.get("/agents").json()["agents"]]
    assert names == [
        "greeter",
        "card",
        "ticket_triage",
        "concierge",
        "word_counter",
        "front_desk",
        "terse",
        "stock",
        "audited",
    ]


def test_structured_output_is_json_and_in_the_schemas(walk: Walk) -> None:
    """An output_type agent answers with JSON (simple route and Agent Protocol state), and
    /agents/{id}/schemas describes it as the output's structured_response."""
    text = "urgent billing problem with order ORD-1234"
    with walk.host.client() as client:
        simple = json.loads(run(client, "ticket_triage", text)["output"])
        waited = client.post("/runs/wait", json={"agent_id": "ticket_triage", "input": text})
        schemas = client.get("/agents/ticket_triage/schemas").json()
    assert {k: simple[k] for k in ("category", "urgent", "order")} == {
        "category": "billing",
        "urgent": True,
        "order": "ORD-1234",
    }
    assert waited.json()["values"]["structured_response"]["order"] == "ORD-1234"
    described = schemas["output_schema"]["properties"]["structured_response"]
    assert set(described["properties"]) == {"category", "urgent", "order", "summary"}


def test_dynamic_instructions_read_the_run_context(walk: Walk) -> None:
    """The concierge's instructions are written per run from its tenant, user and thread."""
    with walk.host.client() as client:
        thread_id = new_thread(client)
        body = run(client, "concierge", "what are your instructions?", thread_id=thread_id)
    assert body["output"].startswith("My instructions: You are the concierge of tenant dev")
    assert f"in thread {thread_id}." in body["output"]


def test_an_agent_is_called_as_a_tool(walk: Walk) -> None:
    """word_counter asks its counting agent (Agent.as_tool), which calls its own tool."""
    with walk.host.client() as client:
        body = run(client, "word_counter", "count the words in: the quick brown fox")
    assert body["output"] == "The text has 4 words."


def test_a_handoff_input_filter_hides_the_earlier_conversation(walk: Walk) -> None:
    """front_desk hands a warranty claim over with only the latest request: the specialist
    answers without the thread's earlier message."""
    with walk.host.client() as client:
        first = run(client, "front_desk", "hello there")
        body = run(client, "front_desk", "I have a warranty claim", thread_id=first["thread_id"])
    assert body["last_agent"] == "warranty"
    assert body["output"].startswith("You said: “I have a warranty claim”.")
    assert "Earlier" not in body["output"]


def test_per_agent_model_settings_apply(walk: Walk) -> None:
    """terse's ModelSettings(max_tokens=4) cuts its answer to four words."""
    with walk.host.client() as client:
        body = run(client, "terse", "tell me everything about the weather today")
    assert len(body["output"].split()) == 4


def test_tool_use_behavior_makes_the_tool_result_the_answer(walk: Walk) -> None:
    """stock's tool_use_behavior returns the tool's record as the answer, without a second
    model turn: the thread's last message is the tool's output, not an assistant message."""
    with walk.host.client() as client:
        body = run(client, "stock", "stock of SKU-1234")
        items = client.get(f"/threads/{body['thread_id']}/messages").json()["items"]
    assert json.loads(body["output"]) == {"sku": "SKU-1234", "in_stock": 34, "warehouse": "north"}
    assert [i.get("type", "message") for i in items] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_run_hooks_report_progress(walk: Walk) -> None:
    """audited's RunHooks emit a progress event at its agent's and its tool's start."""
    with (
        walk.host.client() as client,
        client.stream(
            "POST",
            "/runs/stream",
            json={
                "agent_id": "audited",
                "input": "what time is it in UTC",
                "stream_mode": "custom",
            },
        ) as response,
    ):
        custom = [e.data for e in sse_events(response) if e.event == "custom"]
    assert custom[:2] == [
        {"hook": "agent_start", "agent": "audited"},
        {"hook": "tool_start", "agent": "audited", "tool": "utc_clock"},
    ]


def test_reload_serves_an_edited_agent(walk: Walk) -> None:
    """--reload: editing the agent's module changes what the running host answers."""
    module = walk.agents_dir / "greeter.py"
    module.write_text(module.read_text().replace("You are ", "Hello, you are "))

    def answer() -> str | None:
        try:
            with walk.host.client(timeout=5) as client:
                body = client.post("/agents/greeter/runs", json={"input": "who am I? my user"})
        except httpx.HTTPError:
            return None  # the server is restarting
        output = body.json().get("output", "") if body.status_code == 200 else ""
        return output if output.startswith("Hello, you are ") else None

    # A restart re-imports the app: on a loaded machine that outlasts poll()'s usual deadline.
    deadline = time.monotonic() + RELOAD_DEADLINE_SECONDS
    while (served := answer()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served, f"the edited agent was not served:\n{walk.host.log_tail()}"
