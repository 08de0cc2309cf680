"""Scheduled and one-shot work that runs as ACA Jobs: the registry every stage follows.

Each job has a name, a cron expression in UTC (None for a manually triggered job) and a
`main()` returning the process exit code. `python -m aca_jobs <name>` runs one once and
`python -m aca_jobs --list` prints them. The dev host, `local/compose.yaml`, the Bicep job
resources (`python -m aca_jobs.bicep`) and the Kubernetes CronJobs (`python -m aca_jobs.k8s`)
are generated from / checked against `JOBS`. ACA Jobs get no Dapr sidecar, so jobs
use the stores directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """A job: its name, its UTC cron schedule (None = manual trigger) and its entry point."""

    name: str
    schedule: str | None
    module: str
    description: str
    # ACA `replicaTimeout` in seconds; None keeps jobs.json's value (1800 for a new job).
    replica_timeout: int | None = None

    def load(self) -> Callable[[], int]:
        """Import the job's module (only when the job runs) and return its `main`."""
        main: Callable[[], int] = importlib.import_module(self.module).main
        return main

    @property
    def command(self) -> list[str]:
        """The container command that runs this job once."""
        return ["python", "-m", "aca_jobs", self.name]


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("migrate", None, "aca_jobs.migrate", "Create or upgrade the database schema."),
        Job(
            "drain_outbox",
            "*/1 * * * *",
            "aca_jobs.drain_outbox",
            "Publish due domain events and deliver due webhooks.",
        ),
        Job(
            "expire_reviews",
            "*/5 * * * *",
            "aca_jobs.expire_reviews",
            "Reject human reviews past their expiry and end their runs.",
        ),
        Job(
            "purge_retention",
            "17 3 * * *",
            "aca_jobs.purge_retention",
            "Delete threads, runs, run events and store items past each tenant's retention.",
            replica_timeout=3600,
        ),
        Job(
            "rollup_usage",
            "5 * * * *",
            "aca_jobs.rollup_usage",
            "Recompute tokens and estimated cost per tenant, agent and UTC day.",
            replica_timeout=900,
        ),
        Job(
            "consolidate_memory",
            "*/30 * * * *",
            "aca_jobs.consolidate_memory",
            "Summarize idle threads into their users' long-term memory.",
            replica_timeout=1800,
        ),
        Job(
            "dispatch_crons",
            "* * * * *",
            "aca_jobs.dispatch_crons",
            "Fire due user crons once each (pending runs via the Agent Protocol run path).",
            replica_timeout=300,
        ),
        Job(
            "sweep_leases",
            "*/1 * * * *",
            "aca_jobs.sweep_leases",
            "End or re-enqueue runs whose executor died (lapsed lease) or whose message was lost.",
            replica_timeout=300,
        ),
    )
}
