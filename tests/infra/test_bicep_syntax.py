"""Every Bicep file parses with two independent parsers (no Bicep CLI here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tree_sitter_bicep
from pycep import BicepParser
from tree_sitter import Language, Node, Parser

from tests.infra.infra_helpers import BICEP_DIR, bicep, bicep_files

FILES = bicep_files()


def _broken(node: Node) -> list[str]:
    found = [f"{node.type} at {node.start_point}"] if node.is_error or node.is_missing else []
    for child in node.children:
        found.extend(_broken(child))
    return found


def test_the_expected_modules_exist() -> None:
    """main.bicep and one module per deployable are present."""
    names = {str(p.relative_to(BICEP_DIR)) for p in FILES}
    assert {
        "main.bicep",
        "app/environment.bicep",
        "app/dapr-components.bicep",
        "app/functions.bicep",
        "app/jobs.bicep",
        "app/mcp-tools.bicep",
        "app/ui.bicep",
        "app/rbac.bicep",
        "core/monitoring.bicep",
        "core/identity.bicep",
        "core/registry.bicep",
        "core/storage.bicep",
        "core/postgres.bicep",
        "core/redis.bicep",
        "core/keyvault.bicep",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_pycep_parses(path: Path) -> None:
    """pycep-parser accepts the file."""
    BicepParser().parse(text=path.read_text())


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_tree_sitter_finds_no_error_node(path: Path) -> None:
    """tree-sitter-bicep parses the file with no ERROR or MISSING node."""
    tree = Parser(Language(tree_sitter_bicep.language())).parse(path.read_bytes())
    assert _broken(tree.root_node) == []


def test_the_parsers_flag_a_broken_file() -> None:
    """The syntax check is real: a truncated template fails both parsers."""
    broken = (BICEP_DIR / "core" / "identity.bicep").read_text().rsplit("}", 2)[0]
    with pytest.raises(Exception):  # noqa: B017 - pycep raises lark's UnexpectedInput family
        BicepParser().parse(text=broken)
    tree = Parser(Language(tree_sitter_bicep.language())).parse(broken.encode())
    assert _broken(tree.root_node)


def test_main_targets_the_subscription_and_creates_the_resource_group() -> None:
    """main.bicep runs at subscription scope and creates a resource group tagged for azd."""
    main = bicep("main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    groups = [
        r for r in main["resources"].values() if r["type"] == "Microsoft.Resources/resourceGroups"
    ]
    assert len(groups) == 1
    assert main["variables"]["tags"]["value"] == {"'azd-env-name'": "environmentName"}


def test_every_module_path_exists() -> None:
    """Every module main.bicep references is a file in infra/bicep."""
    for module in bicep("main.bicep")["modules"].values():
        assert (BICEP_DIR / module["detail"]["path"]).is_file(), module["detail"]["path"]
