"""The UI tier in the cloud stage: its own container app (app/ui.bicep), azd service and secret.

Structural: the Bicep, azure.yaml, hooks and compose agree with what the UI reads
(ui/ascent_ui/session.py, Chainlit's own names) and listens on (ui/Dockerfile).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.infra_helpers import (
    BICEP_DIR,
    ROOT,
    azure_yaml,
    bicep,
    compose,
    compose_env,
    env_entries,
    resources,
)

UI = ROOT / "ui"
SECRET = "CHAINLIT_AUTH_SECRET"


def _app() -> dict[str, Any]:
    found: dict[str, Any] = resources("app/ui.bicep")["app"]["body"]
    return found


def _env() -> dict[str, dict[str, Any]]:
    return env_entries(bicep("app/ui.bicep")["variables"])


def _module_params() -> dict[str, Any]:
    found: dict[str, Any] = bicep("main.bicep")["modules"]["ui"]["config"]["params"]
    return found


def _dockerfile_port() -> int:
    match = re.search(r'"--port", "(\d+)"', (UI / "Dockerfile").read_text())
    assert match is not None
    return int(match.group(1))


def test_the_ui_has_public_ingress_on_chainlits_port() -> None:
    """External HTTPS ingress to the port the UI's image listens on (as in compose), sticky so a
    browser's websocket comes back to the replica that holds it."""
    ingress = _app()["properties"]["configuration"]["ingress"]
    assert ingress["external"] is True and ingress["allowInsecure"] is False
    assert ingress["targetPort"] == "port"
    assert bicep("app/ui.bicep")["parameters"]["port"]["default"] == _dockerfile_port()
    assert compose()["services"]["ui"]["ports"] == [f"{_dockerfile_port()}:{_dockerfile_port()}"]
    assert ingress["stickySessions"]["affinity"] == "sticky"


def test_the_ui_reaches_the_api_by_its_public_url() -> None:
    """ASCENT_API_URL is the function app's URL plus /api: HTTP only, like any client."""
    assert _env()["ASCENT_API_URL"]["value"] == "apiUrl"
    assert _module_params()["apiUrl"] == "${functions.outputs.uri}/api"


def test_the_ui_sets_every_setting_it_reads() -> None:
    """Each env var ui/ascent_ui reads, and Chainlit's Entra settings, is set by the Bicep app;
    compose sets the same names for the development sign-in."""
    read = set(
        re.findall(r'environ\.get\("([A-Z_]+)"', (UI / "ascent_ui" / "session.py").read_text())
    )
    entra = {
        "OAUTH_AZURE_AD_CLIENT_ID",
        "OAUTH_AZURE_AD_CLIENT_SECRET",
        "OAUTH_AZURE_AD_TENANT_ID",
        "OAUTH_AZURE_AD_ENABLE_SINGLE_TENANT",
    }
    assert {"ASCENT_API_URL", "ASCENT_UI_AUTH", "ASCENT_UI_API_SCOPE", SECRET} <= read
    assert read | entra | {"CHAINLIT_URL"} <= set(_env())
    assert {"ASCENT_API_URL", "ASCENT_UI_AUTH", SECRET} <= set(compose_env("ui"))


def test_the_session_secret_comes_from_key_vault() -> None:
    """CHAINLIT_AUTH_SECRET (and the Entra client secret) are Key Vault references read with
    the managed identity, stored by core/keyvault.bicep from the azd environment."""
    env = _env()
    assert env[SECRET] == {"name": SECRET, "secretRef": "chainlit-auth-secret"}
    assert env["OAUTH_AZURE_AD_CLIENT_SECRET"]["secretRef"] == "oauth-azure-ad-client-secret"
    main = (BICEP_DIR / "main.bicep").read_text()
    refs = main[main.index("var uiSecretRefs") :].split("\n)\n")[0]
    for name in ("chainlit-auth-secret", "oauth-azure-ad-client-secret"):
        ref = f"name: '{name}', keyVaultUrl: '${{keyVault.outputs.uri}}secrets/{name}'"
        assert f"{ref}, identity: identity.outputs.id" in refs, name
    vault = {r["body"]["name"] for r in resources("core/keyvault.bicep").values()}
    assert {"chainlit-auth-secret", "oauth-azure-ad-client-secret"} <= vault
    assert _module_params()["secrets"] == "uiSecretRefs"


def test_entra_sign_in_is_the_cloud_default() -> None:
    """The cloud UI signs in with Entra ID (single tenant) unless ASCENT_UI_AUTH says `key`."""
    params = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert params["uiAuth"]["value"] == "${ASCENT_UI_AUTH=entra}"
    assert params["uiEntraClientId"]["value"] == "${OAUTH_AZURE_AD_CLIENT_ID=}"
    assert params["uiImage"]["value"] == "${SERVICE_UI_IMAGE_NAME=}"
    assert _env()["OAUTH_AZURE_AD_ENABLE_SINGLE_TENANT"]["value"] == "true"


def test_the_placeholder_answers_like_the_ui() -> None:
    """Before azd's first deploy the app runs a placeholder on the UI's port with the UI's env
    and probe, since azd's deploy swaps only the image."""
    container = _app()["properties"]["template"]["containers"][0]
    assert container["env"] == "env"
    assert container["probes"][0]["httpGet"] == {"path": "/", "port": "port"}
    assert "command" not in container


def test_preprovision_makes_the_session_secret_once() -> None:
    """Both preprovision hooks set CHAINLIT_AUTH_SECRET only when the azd environment has none."""
    hooks = azure_yaml()["hooks"]["preprovision"]
    for shell, needle in (("posix", "[ -z "), ("windows", "IsNullOrEmpty")):
        script = (ROOT / hooks[shell]["run"]).read_text()
        assert f"azd env get-value {SECRET}" in script and f"azd env set {SECRET}" in script
        assert needle in script, shell


def test_the_ui_image_prepares_chainlits_files_before_dropping_root() -> None:
    """Chainlit writes translations and makes `.files` under the app root at start: the image
    does both as root at build, then runs as its non-root user, who owns only `.files`."""
    dockerfile = (UI / "Dockerfile").read_text()
    init = dockerfile.index("init_config()")
    assert init < dockerfile.index("chown ui .files") < dockerfile.index("USER ui")
    assert dockerfile.index("useradd") < init
