"""Bicep's Dapr components and local/components are one definition, and the app IDs agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.infra_helpers import (
    accessor,
    bicep,
    component_files,
    compose,
    load_yaml,
    resources,
)

# Components Azure Container Apps supports (Tier 1 and 2) that this project may use.
ACA_SUPPORTED = {
    "state.redis",
    "state.postgresql",
    "state.azure.blobstorage",
    "state.azure.tablestorage",
    "pubsub.redis",
    "pubsub.azure.servicebus.topics",
    "pubsub.azure.servicebus.queues",
    "pubsub.azure.eventhubs",
}
DAPR_FILE = "app/dapr-components.bicep"


def _loaded() -> dict[str, str]:
    """Variable name -> path of each loadYamlContent in dapr-components.bicep."""
    out = {}
    for name, var in bicep(DAPR_FILE)["variables"].items():
        fn = var["value"].get("function", {}) if isinstance(var["value"], dict) else {}
        if fn.get("type") == "load_yaml_content":
            out[name] = fn["parameters"]["file_path"]
    return out


def _daprd_app_id() -> str:
    command = compose()["services"]["daprd"]["command"]
    return str(command[command.index("--app-id") + 1])


def _bicep_app_id() -> str:
    return str(bicep("main.bicep")["variables"]["daprAppId"]["value"])


def test_bicep_loads_every_local_component_file() -> None:
    """Every file in local/components is loaded by dapr-components.bicep, and only those."""
    loaded = {Path(p).name for p in _loaded().values()}
    assert loaded == {p.name for p in component_files()}
    for path in _loaded().values():
        assert path.startswith("../../../local/components/")


@pytest.mark.parametrize("symbol", ["statestore", "pubsub"])
def test_component_identity_comes_from_the_file(symbol: str) -> None:
    """Name, type, version and scopes of each ACA component are read from its local file."""
    body = resources(DAPR_FILE)[symbol]["body"]
    var = f"{symbol}Def"
    assert var in _loaded()
    assert accessor(body["name"]) == f"{var}.metadata.name"
    props = body["properties"]
    assert accessor(props["componentType"]) == f"{var}.spec.type"
    assert accessor(props["version"]) == f"{var}.spec.version"
    assert accessor(props["scopes"]) == f"{var}.scopes"


def test_subscription_comes_from_the_file() -> None:
    """The ACA subscription takes pubsub, topic, routes and scopes from its file."""
    props = resources(DAPR_FILE)["subscription"]["body"]["properties"]
    assert accessor(props["pubsubName"]) == "subscriptionDef.spec.pubsubname"
    assert accessor(props["topic"]) == "subscriptionDef.spec.topic"
    assert accessor(props["routes"]["default"]) == "subscriptionDef.spec.routes.default"
    assert accessor(props["deadLetterTopic"]) == "subscriptionDef.spec.deadLetterTopic"
    assert accessor(props["scopes"]) == "subscriptionDef.scopes"


@pytest.mark.parametrize("path", component_files(), ids=lambda p: p.name)
def test_local_files_are_scoped_to_the_app(path: Path) -> None:
    """Each local definition is scoped to the app ID that Bicep and compose's daprd both use."""
    assert load_yaml(path)["scopes"] == [_bicep_app_id()] == [_daprd_app_id()]


def test_component_types_are_supported_on_aca() -> None:
    """Every component type is one Azure Container Apps supports."""
    for path in component_files():
        doc = load_yaml(path)
        if doc["kind"] == "Component":
            assert doc["spec"]["type"] in ACA_SUPPORTED, path.name


def test_the_subscription_targets_an_existing_pubsub_under_the_route_prefix() -> None:
    """The subscription names a pub/sub component that exists and routes under /api."""
    docs = [load_yaml(p) for p in component_files()]
    pubsubs = {d["metadata"]["name"] for d in docs if d["kind"] == "Component"}
    for sub in (d for d in docs if d["kind"] == "Subscription"):
        assert sub["spec"]["pubsubname"] in pubsubs
        assert sub["spec"]["routes"]["default"].startswith("/api/")


def test_cloud_components_use_entra_not_passwords() -> None:
    """In Azure the Redis components authenticate with the managed identity over TLS."""
    metadata = {
        m["name"]: m["value"] for m in bicep(DAPR_FILE)["variables"]["redisMetadata"]["value"]
    }
    assert metadata["useEntraID"] == "true"
    assert metadata["enableTLS"] == "true"
    assert metadata["azureClientId"] == "identityClientId"
    assert "redisPassword" not in metadata


def test_daprd_loads_the_mounted_components() -> None:
    """compose mounts local/components into daprd and points --resources-path at the mount."""
    daprd = compose()["services"]["daprd"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in daprd["volumes"]}
    assert "./components" in mounts
    command = daprd["command"]
    assert command[command.index("--resources-path") + 1] == mounts["./components"]


def test_daprd_shares_the_app_network_namespace() -> None:
    """The sidecar runs in the app's network namespace, as on ACA (localhost:3500)."""
    assert compose()["services"]["daprd"]["network_mode"] == "service:functions"
