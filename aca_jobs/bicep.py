"""Generate the cloud stage's job lists from the registry `JOBS`, its single source.

    python -m aca_jobs.bicep            # rewrite the generated files
    python -m aca_jobs.bicep --check    # exit 1 when any of them is out of date

Two files follow the registry:
- `infra/bicep/app/jobs.json`: one ACA job per entry: name, cron schedule (null = manual
  trigger), command and `replicaTimeout` (the Job's `replica_timeout`, else the value already in
  jobs.json, else 1800 seconds);
- `azure.yaml`: its services section: `functions`, the one service that builds the app's image,
  and `ui`, the UI tier's own image (ui/Dockerfile). The jobs are no azd services: they run the
  app's image (main.bicep passes SERVICE_FUNCTIONS_IMAGE_NAME to them, and the postdeploy hook
  moves them to each new image), so it is built once.
The Kubernetes stage's manifests follow the registry too: `python -m aca_jobs.k8s`.
tests/infra fails while a file and the registry disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aca_jobs import JOBS

ROOT = Path(__file__).resolve().parent.parent
JOBS_JSON = ROOT / "infra" / "bicep" / "app" / "jobs.json"
AZURE_YAML = ROOT / "azure.yaml"
DEFAULT_REPLICA_TIMEOUT = 1800
# Everything in azure.yaml after the services: the hooks, kept verbatim.
_HOOKS_MARKER = "hooks:\n"
_SERVICE = """  {name}:
    project: .
    language: python
    host: containerapp
    docker:
      path: ./Dockerfile
      context: .
      platform: linux/amd64
      remoteBuild: true
"""
# The UI tier: its own project, requirements and Dockerfile (ui/), so its own image.
_UI_SERVICE = """  ui:
    project: ./ui
    language: python
    host: containerapp
    docker:
      path: ./Dockerfile
      context: .
      platform: linux/amd64
      remoteBuild: true
"""


def job_definitions(existing: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The jobs.json entries for the registry, in registry order."""
    kept = {str(d.get("name")): d.get("replicaTimeout") for d in existing or []}
    return [
        {
            "name": job.name,
            "schedule": job.schedule,
            "command": job.command,
            "replicaTimeout": job.replica_timeout or kept.get(job.name) or DEFAULT_REPLICA_TIMEOUT,
        }
        for job in JOBS.values()
    ]


def render(existing: list[dict[str, Any]] | None = None) -> str:
    """The text of jobs.json for the registry."""
    return json.dumps(job_definitions(existing), indent=2) + "\n"


def render_azure_yaml(current: str) -> str:
    """azure.yaml with its services section rebuilt: the function app (the one image the jobs
    share too) and the UI."""
    head, _, rest = current.partition("services:\n")
    _, _, hooks = rest.partition(_HOOKS_MARKER)
    services = _SERVICE.format(name="functions") + _UI_SERVICE
    return f"{head}services:\n{services}{_HOOKS_MARKER}{hooks}"


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check report whether they are up to date."""
    parser = argparse.ArgumentParser(prog="python -m aca_jobs.bicep")
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    args = parser.parse_args(argv)
    current_jobs = JOBS_JSON.read_text() if JOBS_JSON.exists() else "[]"
    files = {
        JOBS_JSON: (current_jobs, render(json.loads(current_jobs))),
        AZURE_YAML: (AZURE_YAML.read_text(), render_azure_yaml(AZURE_YAML.read_text())),
    }
    stale = [path for path, (current, wanted) in files.items() if current != wanted]
    if args.check:
        for path in stale:
            sys.stderr.write(f"{path.relative_to(ROOT)} is stale: run python -m aca_jobs.bicep\n")
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
