"""The Dockerfile follows the Functions image conventions; .env.sample documents every setting."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from tests.infra.infra_helpers import PLATFORM_ENV, ROOT, secret_env_names, settings_env_names

DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENV_SAMPLE = ROOT / "local" / ".env.sample"


def _sample_values() -> dict[str, str]:
    pairs = re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", ENV_SAMPLE.read_text(), re.M)
    return dict(pairs)


def test_dockerfile_uses_the_functions_python_image() -> None:
    """The image is the Functions Python 3.11 base, as the platform reference prescribes."""
    assert re.search(
        r"^FROM mcr\.microsoft\.com/azure-functions/python:4-python3\.11$", DOCKERFILE, re.M
    )


def test_base_python_satisfies_the_project() -> None:
    """The base image's Python is one pyproject.toml allows."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires and "<3.13" in requires


def test_dockerfile_sets_the_host_settings() -> None:
    """Script root, init indexing (FastAPI streaming) and console logging are set."""
    for setting in (
        "AzureWebJobsScriptRoot=/home/site/wwwroot",
        "PYTHON_ENABLE_INIT_INDEXING=1",
        "AzureFunctionsJobHost__Logging__Console__IsEnabled=true",
    ):
        assert setting in DOCKERFILE, setting


def test_dockerfile_installs_the_lock_and_copies_the_app() -> None:
    """Dependencies install from requirements.lock and the app lands in the script root."""
    assert "COPY requirements.lock /requirements.lock" in DOCKERFILE
    assert "pip install -r /requirements.lock" in DOCKERFILE
    assert re.search(r"^COPY \. /home/site/wwwroot$", DOCKERFILE, re.M)


def test_dockerignore_keeps_secrets_and_tooling_out() -> None:
    """.env files, the venv, git and tests never enter the image."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", "**/.env", ".venv", ".git", "tests", ".azure"} <= ignored


def test_env_sample_documents_every_setting() -> None:
    """local/.env.sample has a line for every env var Settings reads."""
    assert settings_env_names() <= set(_sample_values())


def test_env_sample_leaves_secrets_empty() -> None:
    """No secret setting has a value in the sample."""
    values = _sample_values()
    for name in secret_env_names() | {"POSTGRES_PASSWORD"}:
        assert values[name] == "", name


def test_env_sample_comments_every_setting() -> None:
    """Each setting is preceded by a comment line (grouped and explained)."""
    lines = ENV_SAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        name = line.split("=", 1)[0]
        if name in settings_env_names():
            above = next(x for x in reversed(lines[:i]) if not re.match(r"^[A-Z_]+=", x))
            assert above.startswith("#"), name


def _local_settings() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "local.settings.sample.json").read_text())
    return loaded


def test_local_settings_sample_names_only_known_settings() -> None:
    """local.settings.sample.json sets settings the code reads or platform vars, nothing else."""
    names = set(_local_settings()["Values"])
    assert names <= settings_env_names() | PLATFORM_ENV
    assert _local_settings()["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_local_settings_sample_leaves_secrets_empty() -> None:
    """No secret in the sample has a value; the real local.settings.json is git-ignored."""
    values = _local_settings()["Values"]
    for name in (secret_env_names() | {"DATABASE_URL"}) & set(values):
        assert values[name] == "", name
    assert "local.settings.json" in (ROOT / ".gitignore").read_text().split()


def test_local_settings_sample_serves_on_the_dev_port_with_a_queue() -> None:
    """`func start` serves on 7071 like the dev host, with the agent-runs queue on Azurite."""
    sample = _local_settings()
    assert sample["Host"]["LocalHttpPort"] == 7071
    assert sample["Values"]["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert sample["Values"]["QUEUE_BACKEND"] == "azure"


def test_funcignore_keeps_what_the_image_keeps_out() -> None:
    """.funcignore excludes everything .dockerignore does (and the local settings)."""

    def patterns(name: str) -> set[str]:
        lines = (ROOT / name).read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.startswith("#")}

    assert patterns(".dockerignore") <= patterns(".funcignore")
    assert "local.settings.json" in patterns(".funcignore")
