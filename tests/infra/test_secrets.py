"""No secret is written into the templates; secure parameters have no defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.infra_helpers import BICEP_DIR, ROOT, bicep, bicep_files, walk

TEMPLATES = [*bicep_files(), BICEP_DIR / "main.parameters.json", ROOT / "azure.yaml"]
# Property names that would hold a secret value; a literal there is a leak.
SECRETISH_KEY = re.compile(
    r"password|secret|token|apikey|api_key|accountkey|sharedkey|connectionstring", re.I
)
# Keys that only *name* or *point to* a secret (secretRef: 'openai-api-key', keyVaultUrl: ...).
REFERENCE_KEY = re.compile(r"(ref|name|names|url|uri|id|identity|secrets|type)$", re.I)
# Literal values that are settings of a secret-named property, not secrets.
MODE_VALUES = {"Enabled", "Disabled", "true", "false"}
# Public IDs: built-in role definition GUIDs.
ROLE_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECRET_SHAPES = [
    re.compile(r"sk-[A-Za-z0-9_-]{20,}"),  # OpenAI keys
    re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),  # storage connection strings
    re.compile(r"(?i)password\s*=\s*[^;'\"\s$]{4,}"),  # ADO-style passwords
    re.compile(r"asc_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"),  # Ascent API keys
    re.compile(r"['\"][A-Za-z0-9+/]{60,}={0,2}['\"]"),  # long base64 blobs
]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", TEMPLATES, ids=_rel)
def test_no_secret_shaped_literal(path: Path) -> None:
    """No template contains anything shaped like a key, token or password."""
    text = path.read_text()
    for shape in SECRET_SHAPES:
        assert not shape.search(text), (shape.pattern, path)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_no_literal_value_under_a_secret_property(path: Path) -> None:
    """A property named like a secret never holds a literal string (only expressions)."""
    parsed = bicep(str(path.relative_to(BICEP_DIR)))
    declared = set(parsed.get("parameters", {})) | set(parsed.get("variables", {}))
    for node in walk(parsed):
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if not SECRETISH_KEY.search(key) or REFERENCE_KEY.search(key):
                continue
            if not isinstance(value, str) or not value or "${" in value:
                continue
            if value in MODE_VALUES or ROLE_GUID.fullmatch(value):
                continue
            assert value in declared or "." in value, (key, value)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_secure_params_have_no_default(path: Path) -> None:
    """Every @secure() parameter must be supplied; none carries a default value."""
    parsed = bicep(str(path.relative_to(BICEP_DIR)))
    for name, param in parsed.get("parameters", {}).items():
        if any(d.get("type") == "secure" for d in param["decorators"]):
            assert param.get("default") is None, name


def test_secret_parameters_come_from_the_environment() -> None:
    """main.parameters.json maps each secret setting to an azd env var, empty by default."""
    params = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    secrets = params["secretSettings"]["value"]
    assert secrets
    for name, value in secrets.items():
        assert value == f"${{{name}=}}", name


def test_outputs_expose_no_secret() -> None:
    """No output reads a secure parameter or lists keys."""
    main = bicep("main.bicep")
    secure = {
        name
        for name, p in main["parameters"].items()
        if any(d.get("type") == "secure" for d in p["decorators"])
    }
    assert secure == {"secretSettings"}
    text = json.dumps(main["outputs"])
    assert "secretSettings" not in text
    assert "list_keys" not in text and "listKeys" not in text


def test_postgres_has_no_password_auth() -> None:
    """The Postgres server allows Entra ID only and declares no administrator login."""
    server = bicep("core/postgres.bicep")["resources"]["server"]["config"]["properties"]
    assert server["authConfig"]["activeDirectoryAuth"] == "Enabled"
    assert server["authConfig"]["passwordAuth"] == "Disabled"
    assert "administratorLogin" not in server
    assert "administratorLoginPassword" not in server


def test_storage_refuses_shared_keys() -> None:
    """The storage account disables shared-key access and holds both run queues."""
    parsed = bicep("core/storage.bicep")
    props = parsed["resources"]["storage"]["config"]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert parsed["parameters"]["queueNames"]["default"] == ["agent-runs", "agent-runs-poison"]


def test_redis_and_registry_and_openai_refuse_keys() -> None:
    """Redis access keys, the ACR admin user and Azure OpenAI local auth are all off."""
    redis = bicep("core/redis.bicep")["resources"]["database"]["config"]["properties"]
    assert redis["accessKeysAuthentication"] == "Disabled"
    registry = bicep("core/registry.bicep")["resources"]["registry"]["config"]["properties"]
    assert registry["adminUserEnabled"] is False
    openai = bicep("core/openai.bicep")["resources"]["account"]["config"]["properties"]
    assert openai["disableLocalAuth"] is True
