"""docs/agents.md, run as written: from an empty folder outside the repo to a served agent.

Each ```bash block of the guide runs in order in bash, in the checkout, with AGENTS_DIR a
temporary folder. Two lines are stood in for, and checked to be in the guide verbatim: the dev
host command (started here by the test launcher with the same setting, path and `--reload`, on
a free port) and the line reading the dev key (the launcher's key and URL are given instead).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DevHost
from tests.e2e.protocol_helpers import poll

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "agents.md").read_text()
DEVHOST = 'ASCENT_AGENTS=greeter,cards PYTHONPATH="$AGENTS_DIR" python -m local.devhost --reload'
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
                        "ASCENT_AGENTS": "greeter,cards",
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

    assert poll(answer, "the edited agent to be served")
