"""azure.yaml has azd's required fields and names services that exist in the templates."""

from __future__ import annotations

import json

from aca_jobs import JOBS
from tests.infra.infra_helpers import BICEP_DIR, ROOT, azure_yaml, bicep, resources


def test_required_top_level_fields() -> None:
    """name, infra (bicep at infra/bicep) and services are present."""
    doc = azure_yaml()
    assert doc["name"]
    assert doc["infra"]["provider"] == "bicep"
    assert doc["infra"]["path"] == "infra/bicep"
    assert (ROOT / doc["infra"]["path"] / f"{doc['infra']['module']}.bicep").is_file()


def test_every_service_has_project_language_host() -> None:
    """Each service names its project, language and a containerapp host."""
    for name, service in azure_yaml()["services"].items():
        assert (ROOT / service["project"]).is_dir(), name
        assert service["language"] in {"python", "py", "docker"}, name
        assert service["host"] == "containerapp", name


def test_every_service_builds_the_repo_dockerfile_remotely() -> None:
    """Each service builds the root Dockerfile in ACR (no local Docker needed)."""
    for name, service in azure_yaml()["services"].items():
        docker = service["docker"]
        assert (ROOT / service["project"] / docker["path"]).resolve() == ROOT / "Dockerfile", name
        assert docker["remoteBuild"] is True, name


def test_services_are_the_app_the_tool_server_and_the_jobs() -> None:
    """The services are the function app, the MCP tool server and one per job of aca_jobs.JOBS."""
    assert set(azure_yaml()["services"]) == {"functions", "mcp_tools", *JOBS}


def test_services_are_tagged_in_bicep() -> None:
    """azd finds each service by tag: the app is tagged functions, each job by its name."""
    app_tags = resources("app/functions.bicep")["app"]["body"]["tags"]
    assert "'azd-service-name': 'functions'" in json.dumps(app_tags).replace('\\"', "'") or (
        {"'azd-service-name'": "functions"} in list(app_tags["function"]["parameters"].values())
    )
    job_tags = json.dumps(resources("app/jobs.bicep")["jobs"]["body"]["tags"])
    assert "azd-service-name" in job_tags and "job" in job_tags and "name" in job_tags


def test_no_infra_file_is_named_after_a_service() -> None:
    """No infra/bicep/<service>.bicep exists (azd would deploy it as a controlled revision)."""
    for name in azure_yaml()["services"]:
        assert not (BICEP_DIR / f"{name}.bicep").exists(), name


def test_each_job_image_comes_from_azd() -> None:
    """main.parameters.json maps each job's image from SERVICE_<JOB>_IMAGE_NAME."""
    params = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    images = params["jobImages"]["value"]
    assert set(images) == set(JOBS)
    for name, value in images.items():
        assert value == f"${{SERVICE_{name.upper().replace('-', '_')}_IMAGE_NAME=}}"
    assert params["functionsImage"]["value"] == "${SERVICE_FUNCTIONS_IMAGE_NAME=}"


def test_parameters_file_matches_main_parameters() -> None:
    """Every mapped parameter exists in main.bicep, and every required one is mapped."""
    mapped = set(json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"])
    declared = bicep("main.bicep")["parameters"]
    assert mapped <= set(declared)
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= mapped


def test_registry_endpoint_is_an_output() -> None:
    """azd pushes images to AZURE_CONTAINER_REGISTRY_ENDPOINT, so main.bicep outputs it."""
    assert "AZURE_CONTAINER_REGISTRY_ENDPOINT" in bicep("main.bicep")["outputs"]


def test_postdeploy_hook_runs_the_migrate_job_from_outputs() -> None:
    """The postdeploy hook starts the migrate job by the names main.bicep outputs."""
    run = azure_yaml()["hooks"]["postdeploy"]["posix"]["run"]
    outputs = bicep("main.bicep")["outputs"]
    for var in ("SERVICE_MIGRATE_NAME", "AZURE_RESOURCE_GROUP"):
        assert f"${var}" in run and var in outputs
