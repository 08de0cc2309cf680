"""Every job of aca_jobs.JOBS is an ACA job with the same schedule and command, and nothing more."""

from __future__ import annotations

import json

from aca_jobs import JOBS
from tests.infra.infra_helpers import BICEP_DIR, accessor, bicep, compose, resources, walk

JOBS_JSON = BICEP_DIR / "app" / "jobs.json"


def _job_defs() -> list[dict[str, object]]:
    defs: list[dict[str, object]] = json.loads(JOBS_JSON.read_text())
    return defs


def test_jobs_json_lists_exactly_the_registry() -> None:
    """jobs.json names the same jobs as aca_jobs.JOBS, no more and no fewer."""
    assert [d["name"] for d in _job_defs()] == list(JOBS)


def test_jobs_json_schedules_match_the_registry() -> None:
    """Each job's cron (None = manual) is the registry's."""
    for d in _job_defs():
        assert d["schedule"] == JOBS[str(d["name"])].schedule


def test_jobs_json_commands_match_the_registry() -> None:
    """Each job's command is `python -m aca_jobs <name>`, as the registry builds it."""
    for d in _job_defs():
        assert d["command"] == JOBS[str(d["name"])].command


def test_scheduled_jobs_use_five_field_cron() -> None:
    """ACA schedules take standard 5-field cron (UTC), not 6-field NCRONTAB."""
    for job in JOBS.values():
        if job.schedule is not None:
            assert len(job.schedule.split()) == 5, job.name


def test_bicep_creates_one_job_per_entry_of_jobs_json() -> None:
    """app/jobs.bicep loops a Microsoft.App/jobs resource over loadJsonContent('jobs.json')."""
    parsed = bicep("app/jobs.bicep")
    load = parsed["variables"]["jobDefs"]["value"]["function"]
    assert load["type"] == "load_json_content"
    assert load["parameters"]["file_path"] == "jobs.json"
    job_resources = [r for r in parsed["resources"].values() if r["type"] == "Microsoft.App/jobs"]
    assert len(job_resources) == 1
    assert job_resources[0]["config"]["loop_type"]["detail"]["array_name"] == "jobDefs"


def test_bicep_jobs_take_schedule_and_command_from_the_definition() -> None:
    """Trigger type follows the schedule (cron = Schedule, none = Manual); command is the job's."""
    body = resources("app/jobs.bicep")["jobs"]["body"]
    config = body["properties"]["configuration"]
    trigger = list(walk(config["triggerType"]))
    assert any(
        isinstance(n, dict)
        and (n.get("true_value"), n.get("false_value")) == ("Manual", "Schedule")
        for n in trigger
    )
    assert "schedule" in trigger
    crons = [
        n["cronExpression"]
        for n in walk(config["scheduleTriggerConfig"])
        if isinstance(n, dict) and "cronExpression" in n
    ]
    assert [accessor(c) for c in crons] == ["job.schedule"]
    assert any(
        isinstance(n, dict) and "parallelism" in n for n in walk(config["manualTriggerConfig"])
    )
    container = body["properties"]["template"]["containers"][0]
    assert accessor(container["command"]) == "job.command"


def test_jobs_get_the_same_settings_and_no_dapr() -> None:
    """Jobs receive the app's settings list and have no Dapr block (unsupported for jobs)."""
    body = resources("app/jobs.bicep")["jobs"]["body"]
    assert "dapr" not in body["properties"]["configuration"]
    assert body["properties"]["template"]["containers"][0]["env"] == "env"
    assert bicep("main.bicep")["modules"]["jobs"]["config"]["params"]["env"] == "jobEnv"


def test_compose_migrate_runs_the_migrate_job_command() -> None:
    """The compose one-shot runs exactly the registry's migrate command."""
    assert compose()["services"]["migrate"]["entrypoint"] == JOBS["migrate"].command


def test_compose_jobs_runner_runs_the_job_module() -> None:
    """The compose jobs runner is `python -m aca_jobs` with the job name as its argument."""
    runner = compose()["services"]["jobs"]
    assert runner["entrypoint"] == JOBS["migrate"].command[:-1]
    assert runner["image"] == compose()["services"]["functions"]["image"]


def test_the_app_waits_for_migrate() -> None:
    """In compose, the app starts only after the migration completed successfully."""
    depends = compose()["services"]["functions"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_jobs_json_is_generated_from_the_registry() -> None:
    """jobs.json is exactly what `python -m aca_jobs.bicep` writes (run it after a change)."""
    from aca_jobs.bicep import render

    current = JOBS_JSON.read_text()
    assert current == render(json.loads(current))


def test_job_modules_declare_the_registrys_name_and_cron() -> None:
    """Each job module with NAME/SCHEDULE agrees with its registry entry and has a main()."""
    import importlib

    for job in JOBS.values():
        module = importlib.import_module(job.module)
        assert callable(module.main), job.name
        assert getattr(module, "NAME", job.name) == job.name
        assert getattr(module, "SCHEDULE", job.schedule) == job.schedule, job.name


def test_every_schedule_is_a_valid_cron() -> None:
    """croniter (the dev host scheduler and the crons API) accepts every registry schedule."""
    from croniter import croniter

    for job in JOBS.values():
        if job.schedule is not None:
            assert croniter.is_valid(job.schedule), job.name


def test_the_dev_host_schedules_exactly_the_registrys_cron_jobs() -> None:
    """The dev host's scheduler runs the registry's scheduled jobs with their commands."""
    from local.job_scheduler import JobScheduler

    scheduled = JobScheduler().jobs
    assert {j.name: j.schedule for j in scheduled} == {
        j.name: j.schedule for j in JOBS.values() if j.schedule is not None
    }
    assert all(j.command == ["python", "-m", "aca_jobs", j.name] for j in scheduled)
