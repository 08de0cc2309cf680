"""The image's entry points are named identically in every stage.

One image, two kinds of entry point: the Functions host (the base image's own entry point,
never overridden) serving the `functions` service, and `python -m aca_jobs <name>` per job.
Dockerfile, compose, Bicep, azure.yaml and the Kubernetes manifests must all say the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aca_jobs import JOBS
from aca_jobs.k8s import generated
from aca_jobs.kustomize import render
from tests.infra.infra_helpers import BICEP_DIR, ROOT, azure_yaml, bicep, compose, resources

APP = "functions"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [r for r in render(ROOT / "infra/k8s/overlays/local") if r["kind"] == kind]


def _job_commands_in_k8s() -> dict[str, list[str]]:
    out = {}
    for cron in _k8s("CronJob"):
        (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        out[cron["metadata"]["labels"]["ascent.dev/job"]] = container["command"]
    return out


def test_the_dockerfile_keeps_the_host_entry_point() -> None:
    """The Dockerfile sets no ENTRYPOINT or CMD: the base image starts the Functions host."""
    assert not re.search(r"^(ENTRYPOINT|CMD)\b", DOCKERFILE, re.M)


def test_the_app_is_named_functions_everywhere() -> None:
    """compose service, azd service, Bicep's azd tag and the Kubernetes Deployment: `functions`."""
    assert APP in compose()["services"]
    assert list(azure_yaml()["services"])[0] == APP
    tags = json.dumps(resources("app/functions.bicep")["app"]["body"]["tags"])
    assert "azd-service-name" in tags and f'"{APP}"' in tags
    assert [d["metadata"]["name"] for d in _k8s("Deployment")][0] == APP


def test_the_app_runs_the_host_with_no_command_override() -> None:
    """Nowhere does the app's container replace the image's entry point."""
    assert not {"entrypoint", "command"} & set(compose()["services"][APP])
    container = resources("app/functions.bicep")["app"]["body"]["properties"]["template"]
    assert "command" not in container["containers"][0]
    (app,) = (d for d in _k8s("Deployment") if d["metadata"]["name"] == APP)
    assert "command" not in app["spec"]["template"]["spec"]["containers"][0]


def test_every_stage_runs_each_job_by_the_same_command() -> None:
    """Bicep (jobs.json), compose and Kubernetes run `python -m aca_jobs <name>` per job."""
    bicep_jobs = {
        d["name"]: d["command"] for d in json.loads((BICEP_DIR / "app/jobs.json").read_text())
    }
    registry = {name: job.command for name, job in JOBS.items()}
    assert bicep_jobs == registry
    assert _job_commands_in_k8s() == registry
    assert compose()["services"]["migrate"]["entrypoint"] == registry["migrate"]
    assert compose()["services"]["jobs"]["entrypoint"] + ["migrate"] == registry["migrate"]


def test_the_migrate_step_runs_the_migrate_job_everywhere() -> None:
    """Before the app: compose's one-shot, the azd hook's job and the k8s init container."""
    (app,) = (d for d in _k8s("Deployment") if d["metadata"]["name"] == APP)
    (init,) = app["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == JOBS["migrate"].command
    hook = (ROOT / azure_yaml()["hooks"]["postdeploy"]["posix"]["run"]).read_text()
    assert "ASCENT_MIGRATE_JOB" in hook
    output = bicep("main.bicep")["outputs"]["ASCENT_MIGRATE_JOB"]["value"]
    text = json.dumps(output)
    assert '"operand_1": "jobs"' in text and '"operand_1": "names", "operand_2": 0' in text
    assert next(iter(JOBS)) == "migrate"  # names[0]: jobs.json follows the registry's order


def test_every_process_runs_the_one_image() -> None:
    """compose builds one image for app, migrate and jobs; Kubernetes runs that image name
    (and, for the UI tier only, the UI's own image)."""
    images = {compose()["services"][s]["image"] for s in (APP, "migrate", "jobs")}
    assert len(images) == 1
    for path, text in generated().items():
        if path.parent.name == "base":
            found = set(re.findall(r"image: (\S+)", text))
            allowed = {compose()["services"]["ui"]["image"]} if path.name == "ui.yaml" else images
            assert found <= allowed, path.name
