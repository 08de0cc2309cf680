"""The architecture holds: `shared/` wings import downward only, with no cycle anywhere.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` checks them from the
command line (make lint), and these tests check them under pytest. A function-local import of
our own code is allowed only to keep cold start fast, and then says so in a comment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import importlinter.api  # noqa: F401  (configures import-linter, as its CLI does)
from importlinter.application.use_cases import SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("shared", "functions", "aca_jobs", "local")


def test_every_import_contract_is_kept() -> None:
    """No wing of shared/ imports a wing above it, and shared/ has no import cycle (the
    report `lint-imports` prints is in the captured output when this fails)."""
    kept = lint_imports(
        config_filename=str(ROOT / "pyproject.toml"),
        cache_dir=None,
        no_logo=True,
        is_debug_mode=True,
    )
    assert kept == SUCCESS


def _local_imports(path: Path) -> list[tuple[int, str]]:
    """First-party imports inside functions of a file, with the comment lines just above."""
    source = path.read_text()
    lines = source.splitlines()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                module = inner.module or ""
            elif isinstance(inner, ast.Import):
                module = inner.names[0].name
            else:
                continue
            if module.split(".")[0] not in FIRST_PARTY:
                continue
            above: list[str] = []
            index = inner.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#"):
                above.append(lines[index])
                index -= 1
            while index >= 0 and lines[index].strip().startswith(("from ", "import ")):
                index -= 1  # a comment may head a block of local imports
                while index >= 0 and lines[index].strip().startswith("#"):
                    above.append(lines[index])
                    index -= 1
            found.append((inner.lineno, " ".join(above) + lines[inner.lineno - 1]))
    return found


def test_function_local_imports_in_shared_and_functions_say_they_keep_cold_start_fast() -> None:
    """A first-party import inside a function of shared/ or functions/ is commented
    `... cold start ...`: it exists to keep import time low, never to dodge a cycle."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("shared", "functions")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, text in _local_imports(path)
        if "cold start" not in text
    ]
    assert offenders == []
