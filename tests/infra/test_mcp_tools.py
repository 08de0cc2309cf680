"""The MCP tool server: image, port, ingress and settings agree in compose, Bicep, azure.yaml."""

from __future__ import annotations

import json
from typing import Any

from mcp_tools.server import DEFAULT_PORT, MCP_PATH
from shared.core.settings import Settings
from tests.infra.infra_helpers import (
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
SERVICE = "mcp-tools"  # compose service and Kubernetes Service: a DNS label (no underscore)


def _container() -> dict[str, Any]:
    found: dict[str, Any] = resources("app/mcp-tools.bicep")["app"]["body"]["properties"][
        "template"
    ]["containers"][0]
    return found


def _port() -> int:
    default: int = bicep("app/mcp-tools.bicep")["parameters"]["port"]["default"]
    return default


def _service() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][SERVICE]
    return found


def test_compose_and_bicep_run_the_same_command_on_the_same_port() -> None:
    """Both run `python -m mcp_tools --host 0.0.0.0 --port 8080`, the server's default port."""
    assert _port() == DEFAULT_PORT
    assert _service()["entrypoint"] == [*COMMAND, str(DEFAULT_PORT)]
    command = _container()["command"]
    assert command[:-1] == COMMAND
    assert command[-1]["function"]["parameters"]["value_to_convert"] == "port"


def test_both_stages_run_the_app_image() -> None:
    """Compose builds the app image; Bicep deploys the one image azd builds (`functions`)."""
    assert _service()["image"] == compose()["services"]["functions"]["image"]
    assert "mcp_tools" not in azure_yaml()["services"]  # azd builds the Dockerfile once
    module = bicep("main.bicep")["modules"]["mcpTools"]["config"]["params"]
    assert "functionsImage" in json.dumps(module["image"])


def test_the_postdeploy_hook_moves_the_tool_server_to_the_new_image() -> None:
    """Both hook scripts update the tool server's container app (a main.bicep output) to the
    image azd built, as they do the jobs."""
    assert "ASCENT_MCP_TOOLS_APP" in bicep("main.bicep")["outputs"]
    tags = json.dumps(resources("app/mcp-tools.bicep")["app"]["body"]["tags"])
    assert "azd-service-name" not in tags and '"mcp_tools"' in tags
    for shell, hook in azure_yaml()["hooks"]["postdeploy"].items():
        script = (ROOT / hook["run"]).read_text()
        assert "ASCENT_MCP_TOOLS_APP" in script and "az containerapp update" in script, shell


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
        assert url == f"${{ASCENT_MCP_TOOLS_URL:-http://{SERVICE}:{DEFAULT_PORT}{MCP_PATH}}}"


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
