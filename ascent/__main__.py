"""`python -m ascent`: scaffold an agent module, or check the catalog a process would serve.

    python -m ascent new NAME [--dir DIR]   writes DIR/NAME.py (an agent) and DIR/test_NAME.py
    python -m ascent check                  loads the catalog (ASCENT_AGENTS, ...) and lists it

Both exit 2 with one line on stderr, never a traceback, when they cannot do their job.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from shared.agents.loading import CatalogError, catalog_modules, loaded

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

AGENT_TEMPLATE = '''"""The {name} agent, served by setting ASCENT_AGENTS={name} (docs/agents.md)."""

from __future__ import annotations

from agents import Agent, RunContextWrapper

from ascent import RunContext, serve_agent, tool


@tool(risk="read")
def who_am_i(ctx: RunContextWrapper[RunContext]) -> str:
    """Tell the user who they are: their user id and their tenant."""
    return f"You are {{ctx.context.user_id}} of tenant {{ctx.context.tenant_id}}."


agent = serve_agent(
    Agent[RunContext](
        name="{name}",
        handoff_description="Tells users who they are.",
        instructions="Answer briefly. Use who_am_i when the user asks who they are.",
        tools=[who_am_i],
    ),
    max_turns=5,
)
'''

TEST_TEMPLATE = '''"""Tests of the {name} agent, on the offline model (no network, no API key)."""

from __future__ import annotations

from ascent import RunContext, run_offline

from {name} import agent


def test_the_tool_reads_the_run_context() -> None:
    """Asked who they are, the agent answers from the run's tenant and user."""
    result = run_offline(
        agent, "who am I? tell me my user and tenant", context=RunContext("acme", "ada")
    )
    assert result.final_output == "You are ada of tenant acme."
'''


def new_agent(name: str, directory: Path) -> list[Path]:
    """Write the agent module and its test; ValueError for a bad name or an existing file."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"agent name {name!r} must be a Python module name: a lower-case letter, then "
            "letters, digits or _ (at most 40)"
        )
    files = {
        directory / f"{name}.py": AGENT_TEMPLATE.format(name=name),
        directory / f"test_{name}.py": TEST_TEMPLATE.format(name=name),
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise ValueError(f"not overwriting {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 2 with one line on stderr otherwise."""
    parser = argparse.ArgumentParser(prog="python -m ascent", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="write an agent module and its test")
    new.add_argument("name", help="the agent's name, also its module's")
    new.add_argument("--dir", type=Path, default=Path.cwd(), help="where (default: here)")
    commands.add_parser("check", help="load the catalog this process would serve")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            for path in new_agent(args.name, args.dir):
                print(f"wrote {path}")
            return 0
        served = loaded().specs
    except (ValueError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"catalog from {', '.join(catalog_modules())}: {', '.join(served)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
