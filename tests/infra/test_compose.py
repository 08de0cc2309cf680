"""The compose mirror fails fast: health checks, pinned images, conditional dependencies."""

from __future__ import annotations

import re

import pytest

from tests.infra.infra_helpers import COMPOSE_FILE, ROOT, compose

SERVICES = sorted(compose()["services"])
CONDITIONS = {"service_healthy", "service_completed_successfully", "service_started"}


def _ids(name: str) -> str:
    # A bare "postgres" id would pick up the suite's postgres marker (and be skipped).
    return f"service-{name}"


@pytest.mark.parametrize("name", SERVICES, ids=_ids)
def test_every_service_has_a_healthcheck(name: str) -> None:
    """Each service declares a health check test (none disabled)."""
    check = compose()["services"][name]["healthcheck"]
    assert check.get("test") and not check.get("disable"), name


@pytest.mark.parametrize("name", SERVICES, ids=_ids)
def test_images_are_pinned(name: str) -> None:
    """Each pulled image names an explicit version tag; built images a local, non-latest tag."""
    service = compose()["services"][name]
    image = service["image"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), image
    tag = image.rsplit(":", 1)[1]
    assert tag != "latest", image
    if "build" not in service:
        assert re.search(r"\d", tag), image


@pytest.mark.parametrize("name", SERVICES, ids=_ids)
def test_dependencies_wait_on_conditions(name: str) -> None:
    """depends_on uses the long form with a condition for every dependency."""
    depends = compose()["services"][name].get("depends_on", {})
    assert isinstance(depends, dict), name
    for dependency, spec in depends.items():
        assert spec["condition"] in CONDITIONS, (name, dependency)
        if spec["condition"] == "service_started":
            # only for a sidecar that must join the app's network namespace
            assert compose()["services"][name].get("network_mode") == f"service:{dependency}"


def test_the_app_waits_for_healthy_stores() -> None:
    """The app starts after Postgres, Redis and Azurite report healthy."""
    depends = compose()["services"]["functions"]["depends_on"]
    for store in ("postgres", "redis", "azurite"):
        assert depends[store]["condition"] == "service_healthy", store


def test_the_app_is_built_from_the_repo_dockerfile() -> None:
    """The app, migrate and jobs services build the root Dockerfile into one image."""
    services = compose()["services"]
    for name in ("functions", "migrate", "jobs"):
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == (
            ROOT / "Dockerfile"
        )
    assert len({services[n]["image"] for n in ("functions", "migrate", "jobs")}) == 1


def test_required_variables_fail_fast() -> None:
    """The Postgres password is required with a message, never defaulted."""
    text = COMPOSE_FILE.read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert not re.search(r"POSTGRES_PASSWORD:-", text)


def test_the_app_health_check_probes_the_api_and_the_sidecar() -> None:
    """The app's health check calls /api/health on port 80 and the sidecar's healthz."""
    test = " ".join(compose()["services"]["functions"]["healthcheck"]["test"])
    assert "http://localhost/api/health" in test
    assert "localhost:3500/v1.0/healthz" in test


def test_the_sidecar_points_at_the_host_port() -> None:
    """daprd calls the app on port 80, as the ACA Dapr config does."""
    command = compose()["services"]["daprd"]["command"]
    assert command[command.index("--app-port") + 1] == "80"


def test_the_ui_is_its_own_service_talking_to_the_api_over_http() -> None:
    """The UI is built from ui/ (its own image), points at the functions service's API and waits
    for it to be healthy; its session secret is required."""
    ui = compose()["services"]["ui"]
    assert (
        ui["build"]["context"] == "../ui"
        and ui["image"] != compose()["services"]["functions"]["image"]
    )
    assert ui["environment"]["ASCENT_API_URL"] == "http://functions/api"
    assert "${CHAINLIT_AUTH_SECRET:?" in ui["environment"]["CHAINLIT_AUTH_SECRET"]
    assert ui["depends_on"]["functions"]["condition"] == "service_healthy"
