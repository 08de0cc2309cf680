"""azure.yaml has azd's required fields and names services that exist in the templates."""

from __future__ import annotations

import json

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


def test_every_service_builds_its_dockerfile_remotely() -> None:
    """Each service builds in ACR (no local Docker needed): the app the root Dockerfile, the UI
    its own (ui/Dockerfile, its own requirements), with its own folder as the build context."""
    dockerfiles = {"functions": ROOT / "Dockerfile", "ui": ROOT / "ui" / "Dockerfile"}
    for name, service in azure_yaml()["services"].items():
        docker = service["docker"]
        assert (ROOT / service["project"] / docker["path"]).resolve() == dockerfiles[name], name
        assert docker["context"] == ".", name
        assert docker["remoteBuild"] is True, name


def test_one_service_builds_the_one_image() -> None:
    """The app's image is built once (by `functions`); the only other service is the UI's."""
    assert set(azure_yaml()["services"]) == {"functions", "ui"}
    projects = [s["project"] for s in azure_yaml()["services"].values()]
    assert projects.count(".") == 1


def test_services_are_tagged_in_bicep() -> None:
    """azd finds each service by tag: the app is tagged functions, the UI ui; jobs are none."""
    app_tags = resources("app/functions.bicep")["app"]["body"]["tags"]
    assert "'azd-service-name': 'functions'" in json.dumps(app_tags).replace('\\"', "'") or (
        {"'azd-service-name'": "functions"} in list(app_tags["function"]["parameters"].values())
    )
    ui_tags = json.dumps(resources("app/ui.bicep")["app"]["body"]["tags"])
    assert "azd-service-name" in ui_tags and '"ui"' in ui_tags
    job_tags = json.dumps(resources("app/jobs.bicep")["jobs"]["body"]["tags"])
    assert "azd-service-name" not in job_tags and "ascent-job" in job_tags


def test_no_infra_file_is_named_after_a_service() -> None:
    """No infra/bicep/<service>.bicep exists (azd would deploy it as a controlled revision)."""
    for name in azure_yaml()["services"]:
        assert not (BICEP_DIR / f"{name}.bicep").exists(), name


def test_the_jobs_run_the_functions_image() -> None:
    """The one image (SERVICE_FUNCTIONS_IMAGE_NAME) goes to the app and to every job."""
    params = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert params["functionsImage"]["value"] == "${SERVICE_FUNCTIONS_IMAGE_NAME=}"
    assert "jobImages" not in params
    image = bicep("main.bicep")["modules"]["jobs"]["config"]["params"]["image"]
    assert "functionsImage" in json.dumps(image)
    container = resources("app/jobs.bicep")["jobs"]["body"]["properties"]["template"]
    assert container["containers"][0]["image"] == "image"


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


def _hook_script(shell: str) -> str:
    run = azure_yaml()["hooks"]["postdeploy"][shell]["run"]
    return (ROOT / run).read_text()


def test_postdeploy_hook_uses_the_outputs_main_bicep_sets() -> None:
    """The hook scripts read the job names and resource group from main.bicep's outputs."""
    outputs = bicep("main.bicep")["outputs"]
    for shell in ("posix", "windows"):
        script = _hook_script(shell)
        for var in ("ASCENT_JOBS", "ASCENT_MIGRATE_JOB", "AZURE_RESOURCE_GROUP"):
            assert var in script and var in outputs, (shell, var)
        assert "SERVICE_FUNCTIONS_IMAGE_NAME" in script


def test_a_failed_migration_fails_the_deploy() -> None:
    """No hook continues on error; the scripts stop on errors and wait for migrate's outcome."""
    for shell, hook in azure_yaml()["hooks"]["postdeploy"].items():
        assert not hook.get("continueOnError", False), shell
    posix = _hook_script("posix")
    assert "set -eu" in posix
    assert "job execution show" in posix and "exit 1" in posix
    windows = _hook_script("windows")
    assert "$ErrorActionPreference = 'Stop'" in windows and "exit 1" in windows


def test_postdeploy_moves_every_job_to_the_new_image() -> None:
    """Before migrating, the hook updates each job's image to the one azd just deployed."""
    for shell in ("posix", "windows"):
        script = _hook_script(shell)
        assert "containerapp job update" in script and "--image" in script, shell
        assert script.index("job update") < script.index("job start"), shell


def test_azure_yaml_services_are_generated() -> None:
    """azure.yaml's services are what `python -m aca_jobs.bicep` writes (the one build)."""
    from aca_jobs.bicep import main

    assert main(["--check"]) == 0
