"""The dev host's job scheduler: registry schedules, due times only, child processes, logs."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aca_jobs import JOBS, Job
from local.job_scheduler import JobScheduler

T0 = datetime(2031, 3, 4, 12, 0, 30, tzinfo=UTC)


def test_the_schedule_is_the_registrys() -> None:
    """Every job of aca_jobs.JOBS with a cron is scheduled, and only those."""
    scheduler = JobScheduler()
    assert [j.name for j in scheduler.jobs] == [j.name for j in JOBS.values() if j.schedule]


def test_nothing_runs_at_start_only_at_due_times() -> None:
    """Planning at 12:00:30 runs nothing; at 12:01 every-minute jobs are due, once."""
    every_minute = Job("a", "* * * * *", "x", "every minute")
    hourly = Job("b", "5 * * * *", "x", "hourly")
    scheduler = JobScheduler([every_minute, hourly])
    scheduler.plan(T0)
    assert scheduler.due(T0) == []
    assert scheduler.due(T0.replace(minute=1, second=0)) == [every_minute]
    assert scheduler.due(T0.replace(minute=1, second=5)) == []
    assert scheduler.due(T0.replace(minute=5, second=0)) == [every_minute, hourly]


def test_a_missed_tick_runs_the_job_once() -> None:
    """A host suspended across five ticks runs the job once when it wakes."""
    job = Job("a", "* * * * *", "x", "every minute")
    scheduler = JobScheduler([job])
    scheduler.plan(T0)
    assert scheduler.due(T0.replace(minute=6)) == [job]
    assert scheduler.due(T0.replace(minute=6, second=40)) == []


def test_a_due_job_runs_in_a_child_process_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The job runs as `python -m aca_jobs <name>` with the host's env; start and end logged."""
    env = {**os.environ, "ASCENT_DATA_DIR": str(tmp_path / "data"), "ASCENT_ENV": "test"}
    env.pop("DATABASE_URL", None)
    scheduler = JobScheduler([JOBS["rollup_usage"]], env=env)
    caplog.set_level(logging.INFO, logger="ascent.jobs")
    execution = scheduler.launch(JOBS["migrate"])
    assert execution is not None and execution.pid != os.getpid()
    assert execution.done.wait(60), "the job did not end"
    assert execution.exit_code == 0 and execution.duration is not None
    assert (tmp_path / "data" / "ascent.db").exists()  # the child used the host's env
    messages = [r.getMessage() for r in caplog.records if r.name == "ascent.jobs"]
    assert any(m.startswith(f"job migrate started (pid {execution.pid})") for m in messages)
    assert any(m.startswith("job migrate ended: exit code 0 in ") for m in messages)


def test_a_failing_job_logs_its_exit_code(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A job that fails (no schema in its database) is logged with its non-zero exit code."""
    env = {**os.environ, "ASCENT_DATA_DIR": str(tmp_path / "data"), "ASCENT_ENV": "test"}
    env.pop("DATABASE_URL", None)
    scheduler = JobScheduler(env=env)
    caplog.set_level(logging.INFO, logger="ascent.jobs")
    execution = scheduler.launch(JOBS["rollup_usage"])
    assert execution is not None and execution.done.wait(60)
    assert execution.exit_code == 1
    assert any("job rollup_usage ended: exit code 1" in r.getMessage() for r in caplog.records)
