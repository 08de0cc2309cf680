"""The agent catalog loaded from the developer's code, and the public API it is declared with.

A catalog that cannot be served (an import error, a duplicate name, a tool without a risk
class) stops `python -m ascent check` and the dev host with one line naming the file and the
agent, exit status 2, and no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import ascent
from ascent.__main__ import main as ascent_main
from shared.agents import loading as catalog_module
from shared.core.settings import get_settings

GOOD = """
from agents import Agent
from ascent import serve_agent, tool

@tool(risk="read")
def ping() -> str:
    '''Answer pong.'''
    return "pong"

agent = serve_agent(Agent(name="{name}", tools=[ping]))
"""


@pytest.fixture
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for agent modules; the process's catalog is reloaded around it."""
    folder = tmp_path / "agents"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    catalog_module.loaded.cache_clear()
    yield folder
    catalog_module.loaded.cache_clear()
    get_settings.cache_clear()


def check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], modules: str
) -> tuple[int, str]:
    """Run `python -m ascent check` in-process with ASCENT_AGENTS=modules: status, stderr."""
    monkeypatch.setenv("ASCENT_AGENTS", modules)
    get_settings.cache_clear()
    status = ascent_main(["check"])
    return status, capsys.readouterr().err


def test_the_public_api_is_pinned() -> None:
    """The names `ascent` exports are exactly these: changing them is a deliberate act."""
    assert sorted(ascent.__all__) == [
        "AgentSpec",
        "CatalogError",
        "MEMORY_TOOLS",
        "McpServer",
        "Risk",
        "RunContext",
        "emit_progress",
        "no_card_numbers",
        "run_offline",
        "serve_agent",
        "tool",
    ]
    assert all(hasattr(ascent, name) for name in ascent.__all__)


def test_a_module_path_setting_serves_its_agents(
    agents_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ASCENT_AGENTS names the modules served; their declared agents are the catalog."""
    (agents_dir / "cat_good_a.py").write_text(GOOD.format(name="alpha"))
    (agents_dir / "cat_good_b.py").write_text(GOOD.format(name="beta"))
    status, err = check(monkeypatch, capsys, "cat_good_a,cat_good_b")
    assert (status, err) == (0, "")
    assert list(catalog_module.catalog()) == ["alpha", "beta"]


def test_an_import_error_names_the_file_and_line(
    agents_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module that fails to import: exit 2, its file and failing line, no traceback."""
    path = agents_dir / "cat_broken_import.py"
    path.write_text("from agents import Agent\nimport no_such_dependency\n")
    status, err = check(monkeypatch, capsys, "cat_broken_import")
    assert status == 2
    assert err == (
        f"error: agent module 'cat_broken_import' ({path}, line 2) cannot be imported: "
        "ModuleNotFoundError: No module named 'no_such_dependency'\n"
    )


def test_a_duplicate_name_names_both_files(
    agents_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two modules declaring one agent name: exit 2, the agent and both files named."""
    first, second = agents_dir / "cat_dup_a.py", agents_dir / "cat_dup_b.py"
    first.write_text(GOOD.format(name="twin"))
    second.write_text(GOOD.format(name="twin"))
    status, err = check(monkeypatch, capsys, "cat_dup_a,cat_dup_b")
    assert status == 2
    assert err == (
        f"error: {second}: agent 'twin' is declared twice (also in {first}); "
        "agent names must be unique\n"
    )


def test_a_tool_without_a_risk_class_is_refused(
    agents_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain function_tool (no ascent.tool risk) on a handed-off agent: exit 2, naming the
    file, the served agent, the tool and the agent that holds it."""
    path = agents_dir / "cat_unclassified.py"
    path.write_text(
        "from agents import Agent, function_tool, handoff\n"
        "from ascent import serve_agent\n"
        "@function_tool\n"
        "def wire_money(amount: float) -> str:\n"
        "    '''Send money.'''\n"
        "    return 'sent'\n"
        "payer = Agent(name='payer', tools=[wire_money])\n"
        "front = serve_agent(Agent(name='front', handoffs=[handoff(payer)]))\n"
    )
    status, err = check(monkeypatch, capsys, "cat_unclassified")
    assert status == 2
    assert err == (
        f"error: {path}: agent 'front': tool 'wire_money' (through agent 'payer') has no risk "
        "class; declare it with ascent.tool(..., risk='read' | 'write' | 'spend')\n"
    )


def test_the_dev_host_stops_before_serving_a_broken_catalog(
    agents_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dev host checks the catalog first: exit 2 with the one line, no database touched."""
    from local.devhost import main as devhost_main

    (agents_dir / "cat_host_dup.py").write_text(
        "from agents import Agent\n"
        "from ascent import serve_agent\n"
        "first = serve_agent(Agent(name='one'))\n"
        "second = serve_agent(Agent(name='one'))\n"
    )
    monkeypatch.setenv("ASCENT_AGENTS", "cat_host_dup")
    get_settings.cache_clear()
    assert devhost_main(["--no-jobs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {agents_dir / 'cat_host_dup.py'}: agent 'one' is declared twice")
    assert not get_settings().data_dir.exists()
