"""Shared readers for the infra tests: parsed Bicep, compose, azure.yaml and the code's settings."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pycep import BicepParser

from shared.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
COMPONENTS_DIR = ROOT / "local" / "components"
COMPOSE_FILE = ROOT / "local" / "compose.yaml"

# Env vars the platform (Functions host, Dapr SDK, telemetry) reads rather than our code.
PLATFORM_ENV = frozenset(
    {
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "FUNCTIONS_WORKER_RUNTIME",
        "PYTHON_ENABLE_INIT_INDEXING",
    }
)

# Outputs azd itself (or the azure.yaml hook) consumes; every other output is a setting.
AZD_OUTPUTS = frozenset(
    {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_CONTAINER_REGISTRY_ENDPOINT",
        "SERVICE_FUNCTIONS_NAME",
        "SERVICE_FUNCTIONS_URI",
        "ASCENT_MIGRATE_JOB",
        "ASCENT_JOBS",
        "ASCENT_MCP_TOOLS_APP",
        "SERVICE_UI_NAME",
        "SERVICE_UI_URI",
    }
)


def settings_env_names() -> set[str]:
    """Every env var the Settings object reads, from its field aliases."""
    return {field.alias or name.upper() for name, field in Settings.model_fields.items()}


def secret_env_names() -> set[str]:
    """The settings typed as secrets (SecretStr)."""
    return {
        field.alias or name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in repr(field.annotation)
    }


def bicep_files() -> list[Path]:
    """Every .bicep file under infra/bicep."""
    return sorted(BICEP_DIR.rglob("*.bicep"))


@cache
def bicep(relative: str) -> dict[str, Any]:
    """The pycep parse of one Bicep file, relative to infra/bicep."""
    parsed: dict[str, Any] = BicepParser().parse(text=(BICEP_DIR / relative).read_text())
    return parsed


def walk(node: Any) -> Iterator[Any]:
    """Every dict and list nested in a parsed structure, the node itself first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def env_entries(node: Any) -> dict[str, dict[str, Any]]:
    """Container env entries ({name, value | secretRef}) anywhere in a parsed node, by name."""
    return {
        item["name"]: item
        for item in walk(node)
        if isinstance(item, dict)
        and isinstance(item.get("name"), str)
        and ("value" in item or "secretRef" in item)
    }


def accessor(node: Any) -> str:
    """Flatten a pycep property-accessor chain into dotted text (`a.b.c`)."""
    if isinstance(node, str):
        return node
    operands = node["operator"]["operands"]
    return f"{accessor(operands['operand_1'])}.{accessor(operands['operand_2'])}"


def resources(relative: str) -> dict[str, dict[str, Any]]:
    """The resources of a Bicep file, each with its loop/condition wrapper removed."""
    out = {}
    for symbol, resource in bicep(relative).get("resources", {}).items():
        config = resource["config"]
        if "loop_type" in config or ("condition" in config and "config" in config):
            config = config["config"]
        out[symbol] = {**resource, "body": config}
    return out


@cache
def compose() -> dict[str, Any]:
    """local/compose.yaml, with YAML anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_env(service: str) -> dict[str, str]:
    """The environment of one compose service as a dict."""
    env = compose()["services"][service].get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@cache
def azure_yaml() -> dict[str, Any]:
    """The azd project file."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "azure.yaml").read_text())
    return loaded


def component_files() -> list[Path]:
    """The Dapr resource files compose mounts into daprd."""
    return sorted(COMPONENTS_DIR.glob("*.yaml"))


def load_yaml(path: Path) -> dict[str, Any]:
    """One YAML document."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded
