"""The function app's shape, and that Bicep and compose set exactly the settings the code reads."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.core.settings import Settings
from tests.infra.infra_helpers import (
    AZD_OUTPUTS,
    BICEP_DIR,
    PLATFORM_ENV,
    ROOT,
    accessor,
    bicep,
    compose_env,
    env_entries,
    resources,
    secret_env_names,
    settings_env_names,
)

SETTINGS_JSON = BICEP_DIR / "app" / "settings.json"
# Settings whose value differs per process kind: the app has a Dapr sidecar, jobs have none.
PER_PROCESS = {"SESSION_BACKEND", "DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "ASCENT_EVENTS_PUBLISH"}


def _app() -> dict[str, Any]:
    return resources("app/functions.bicep")["app"]


def _var(name: str) -> Any:
    return bicep("main.bicep")["variables"][name]["value"]


def _tunables() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(SETTINGS_JSON.read_text())
    return loaded


def _names(var: str) -> list[str]:
    """Env names of a main.bicep env list, one per entry (conditional entries count once)."""
    names = []
    for entry in _var(var):
        found = env_entries(entry)
        assert len(found) == 1, entry
        names.extend(found)
    return names


def test_the_app_is_a_functionapp_container_app() -> None:
    """The app is Microsoft.App/containerApps of kind functionapp on a stable API version."""
    app = _app()
    assert app["type"] == "Microsoft.App/containerApps"
    assert app["body"]["kind"] == "functionapp"
    assert app["api_version"] == "2025-07-01"


def test_the_app_has_dapr_enabled() -> None:
    """Dapr is on, with an app ID, talking HTTP to the host's port."""
    dapr = _app()["body"]["properties"]["configuration"]["dapr"]
    assert dapr["enabled"] is True
    assert dapr["appId"] == "daprAppId"
    assert dapr["appPort"] == 80


def test_ingress_targets_the_functions_host_port() -> None:
    """Ingress is on (needed for autoscale) and targets port 80, where the host listens."""
    ingress = _app()["body"]["properties"]["configuration"]["ingress"]
    assert ingress["targetPort"] == 80
    assert ingress["allowInsecure"] is False


def test_the_app_runs_as_the_user_assigned_identity() -> None:
    """The app uses the user-assigned identity, also for image pulls."""
    body = _app()["body"]
    assert body["identity"]["type"] == "UserAssigned"
    registries = body["properties"]["configuration"]["registries"]
    assert [r["identity"] for r in registries] == ["identityId"]


def test_replicas_are_bounded() -> None:
    """The app sets min and max replicas from parameters."""
    scale = _app()["body"]["properties"]["template"]["scale"]
    assert scale == {"minReplicas": "minReplicas", "maxReplicas": "maxReplicas"}


def test_app_env_is_every_setting_the_code_reads_and_nothing_else() -> None:
    """The app's settings (shared, secret, tunable, app-only) are exactly Settings' env vars."""
    names = _names("sharedEnv") + _names("secretEnv") + list(_tunables()) + _names("appOnlyEnv")
    assert len(names) == len(set(names)), "a setting is set twice"
    assert set(names) == settings_env_names()


def test_job_env_is_every_setting_the_code_reads_and_nothing_else() -> None:
    """The jobs' settings are the same names, with their own per-process values."""
    names = _names("sharedEnv") + _names("secretEnv") + list(_tunables()) + _names("jobOnlyEnv")
    assert len(names) == len(set(names))
    assert set(names) == settings_env_names()
    assert set(_names("appOnlyEnv")) == set(_names("jobOnlyEnv")) == PER_PROCESS


def test_env_lists_are_assembled_from_those_parts() -> None:
    """appEnv and jobEnv concatenate the parts above, and the modules receive them."""
    for var, own in (("appEnv", "appOnlyEnv"), ("jobEnv", "jobOnlyEnv")):
        parts = list(_var(var)["function"]["parameters"].values())
        assert parts == ["sharedEnv", "secretEnv", "tunableEnv", own]
    modules = bicep("main.bicep")["modules"]
    assert modules["functions"]["config"]["params"]["env"] == "appEnv"
    assert modules["jobs"]["config"]["params"]["env"] == "jobEnv"


def test_tunables_are_loaded_from_settings_json() -> None:
    """The tunable settings come from app/settings.json, one env entry per key."""
    load = _var("tunableSettings")["function"]
    assert load["type"] == "load_json_content"
    assert load["parameters"]["file_path"] == "app/settings.json"
    assert _var("tunableList") == {
        "function": {"type": "items", "parameters": {"arg_1": "tunableSettings"}}
    }
    loop = _var("tunableEnv")
    assert loop["loop_type"]["detail"]["array_name"] == "tunableList"


def test_tunables_hold_the_code_defaults() -> None:
    """Each value in app/settings.json is the code's default for that setting."""
    fields = {f.alias: f for f in Settings.model_fields.values()}
    for name, value in _tunables().items():
        default = fields[name].default
        expected = "" if default is None else str(default)
        assert value.lower() == expected.lower(), name


def test_the_app_gets_platform_vars_plus_the_settings_only() -> None:
    """The container env is allow-listed platform vars followed by the settings list."""
    container = _app()["body"]["properties"]["template"]["containers"][0]
    assert container["env"] == {
        "function": {"type": "concat", "parameters": {"arg_1": "platformEnv", "arg_2": "env"}}
    }
    platform = set(env_entries(bicep("app/functions.bicep")["variables"]["platformEnv"]["value"]))
    assert platform <= PLATFORM_ENV


def test_secret_settings_come_from_key_vault_references() -> None:
    """Every secret setting is empty or a Key Vault secretRef, never a plain parameter value."""
    assert secret_env_names() <= set(_names("secretEnv"))
    for entry in _var("secretEnv"):
        branches = entry["operator"]["operands"]
        assert branches["true_value"]["value"] == ""
        assert "secretRef" in branches["false_value"]


def test_the_state_store_name_comes_from_the_component() -> None:
    """DAPR_STATE_STORE is the name in local/components/statestore.yaml, loaded by Bicep."""
    entry = env_entries(_var("sharedEnv"))["DAPR_STATE_STORE"]
    assert accessor(entry["value"]) == "statestoreDef.metadata.name"
    load = _var("statestoreDef")["function"]
    assert load["type"] == "load_yaml_content"
    assert load["parameters"]["file_path"] == "../../local/components/statestore.yaml"


def test_the_app_uses_the_sidecar_and_jobs_do_not() -> None:
    """The app gets the Dapr ports; jobs (no sidecar on ACA) get none and a non-Dapr backend."""
    app = env_entries(_var("appOnlyEnv"))
    jobs = env_entries(_var("jobOnlyEnv"))
    assert (app["DAPR_HTTP_PORT"]["value"], app["DAPR_GRPC_PORT"]["value"]) == ("3500", "50001")
    assert (jobs["DAPR_HTTP_PORT"]["value"], jobs["DAPR_GRPC_PORT"]["value"]) == ("", "")
    assert "sql" in json.dumps(jobs["SESSION_BACKEND"])


def test_compose_gives_the_app_the_same_settings() -> None:
    """The compose app service sets every setting the code reads, plus platform vars only."""
    names = set(compose_env("functions"))
    assert settings_env_names() <= names
    assert names - settings_env_names() <= PLATFORM_ENV


def test_compose_gives_the_jobs_the_same_settings_without_a_sidecar() -> None:
    """The compose migrate and jobs services set exactly the settings, with no sidecar ports."""
    for service in ("migrate", "jobs"):
        env = compose_env(service)
        assert set(env) == settings_env_names(), service
        assert env["DAPR_HTTP_PORT"] == env["DAPR_GRPC_PORT"] == "", service


def test_outputs_are_named_like_settings() -> None:
    """Every output is a setting the code reads or an azd convention, and none is a secret."""
    outputs = set(bicep("main.bicep")["outputs"])
    assert outputs - AZD_OUTPUTS <= settings_env_names()
    assert not outputs & secret_env_names()
    assert {"DATABASE_URL", "MODEL_PROVIDER", "MODEL_NAME", "AZURE_OPENAI_ENDPOINT"} <= outputs


def test_database_url_carries_no_password() -> None:
    """The cloud DATABASE_URL names the managed identity and requires TLS, with no password."""
    url = _var("databaseUrl")
    assert re.fullmatch(
        r"postgresql://\$\{[^}:@]+\}@\$\{[^}]+\}:5432/\$\{[^}]+\}\?sslmode=require", url
    )


def test_model_name_default_matches_the_code() -> None:
    """The cloud's default MODEL_NAME is the code's default."""
    default = bicep("main.bicep")["parameters"]["modelName"]["default"]
    assert default == Settings.model_fields["model_name"].default


def test_host_json_route_prefix_is_api() -> None:
    """HTTP routes live under /api, which the health checks and Dapr routes assume."""
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == "api"
