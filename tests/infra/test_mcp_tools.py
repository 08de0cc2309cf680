"""The MCP tool server: image, port, ingress and settings agree in compose, Bicep, azure.yaml."""

from __future__ import annotations

import json
from typing import Any

from mcp_tools.server import DEFAULT_PORT, MCP_PATH
from shared.core.settings import Settings
from tests.infra.infra_helpers import (
    BICEP_DIR,
    ROOT,
    accessor,
    azure_yaml,
    bicep,
    compose,
    compose_env,
    env_entries,
    resources,
)

TOKEN = "ASCENT_MCP_TOOLS_TOKEN"
# A container listens on all its interfaces; ingress decides who reaches it.
COMMAND = ["python", "-m", "mcp_tools", "--host", "0.0.0.0", "--port"]  # noqa: S104


def _container() -> dict[str, Any]:
    found: dict[str, Any] = resources("app/mcp-tools.bicep")["app"]["body"]["properties"][
        "template"
    ]["containers"][0]
    return found


def _port() -> int:
    default: int = bicep("app/mcp-tools.bicep")["parameters"]["port"]["default"]
    return default


def _service() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]["mcp_tools"]
    return found


def test_compose_and_bicep_run_the_same_command_on_the_same_port() -> None:
    """Both run `python -m mcp_tools --host 0.0.0.0 --port 8080`, the server's default port."""
    assert _port() == DEFAULT_PORT
    assert _service()["entrypoint"] == [*COMMAND, str(DEFAULT_PORT)]
    command = _container()["command"]
    assert command[:-1] == COMMAND
    assert command[-1]["function"]["parameters"]["value_to_convert"] == "port"


def test_both_stages_run_the_app_image() -> None:
    """Compose builds the app image; Bicep deploys azd's mcp_tools image (the same Dockerfile)."""
    assert _service()["image"] == compose()["services"]["functions"]["image"]
    service = azure_yaml()["services"]["mcp_tools"]
    assert (ROOT / service["project"] / service["docker"]["path"]).resolve() == ROOT / "Dockerfile"
    params = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert params["mcpToolsImage"]["value"] == "${SERVICE_MCP_TOOLS_IMAGE_NAME=}"
    module = bicep("main.bicep")["modules"]["mcpTools"]["config"]["params"]
    assert "mcpToolsImage" in json.dumps(module["image"])


def test_azd_finds_the_container_app_by_its_service_name() -> None:
    """The container app's azd-service-name tag is the azure.yaml service name."""
    tags = json.dumps(resources("app/mcp-tools.bicep")["app"]["body"]["tags"])
    assert '"mcp_tools"' in tags and "azd-service-name" in tags
    assert "mcp_tools" in azure_yaml()["services"]


def test_ingress_is_internal_on_the_port_with_a_health_probe() -> None:
    """Only the environment reaches it, on its port; both stages probe /health there."""
    ingress = resources("app/mcp-tools.bicep")["app"]["body"]["properties"]["configuration"][
        "ingress"
    ]
    assert ingress["external"] is False and ingress["targetPort"] == "port"
    assert _container()["probes"] == [
        {"type": "Readiness", "httpGet": {"path": "/health", "port": "port"}}
    ]
    assert f"localhost:{DEFAULT_PORT}/health" in " ".join(_service()["healthcheck"]["test"])


def test_the_agents_reach_it_at_its_mcp_path() -> None:
    """The app's ASCENT_MCP_TOOLS_URL is the server's /mcp: the module output in Bicep, the
    service name and port in compose (for the app and the jobs alike)."""
    entry = env_entries(bicep("main.bicep")["variables"]["sharedEnv"]["value"])[
        "ASCENT_MCP_TOOLS_URL"
    ]
    assert accessor(entry["value"]) == "mcpTools.outputs.url"
    output = bicep("app/mcp-tools.bicep")["outputs"]["url"]["value"]
    assert output.endswith(f"ingress.fqdn}}{MCP_PATH}")
    for name in ("functions", "migrate", "jobs"):
        url = compose_env(name)["ASCENT_MCP_TOOLS_URL"]
        assert url == f"${{ASCENT_MCP_TOOLS_URL:-http://mcp_tools:{DEFAULT_PORT}{MCP_PATH}}}"


def test_its_only_setting_is_the_token_from_key_vault() -> None:
    """Both stages give the server exactly ASCENT_MCP_TOOLS_TOKEN: from local/.env in compose,
    the Key Vault reference (or empty) of the app's secrets in Bicep."""
    assert TOKEN in {f.alias for f in Settings.model_fields.values()}
    assert set(_service()["environment"]) == {TOKEN}
    params = bicep("main.bicep")["modules"]["mcpTools"]["config"]["params"]
    for key, source in (("env", "secretEnv"), ("secrets", "secretRefs")):
        found = params[key]["function"]
        assert found["type"] == "filter" and found["parameters"]["input_array"] == source
        assert "ASCENT_MCP_TOOLS_TOKEN" in json.dumps(
            found
        ) or "ascent-mcp-tools-token" in json.dumps(found)
