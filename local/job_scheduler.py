"""The dev host's stand-in for ACA's job scheduler: runs each scheduled job on its cron.

Schedules come from `aca_jobs.JOBS` (croniter, UTC), the same registry Bicep and compose use.
At a due time the job runs in a CHILD PROCESS, `python -m aca_jobs <name>`, with the dev
host's environment, exactly as an ACA job execution runs the container command; the scheduler
logs its start, end, exit code and duration. Jobs only fire at due cron times, never at start
(so tests that start dev hosts are not disturbed by jobs; `--no-jobs` turns it off entirely).
A missed tick (the host was suspended) runs the job once, not once per missed tick. If the
previous execution of a job is still running at its next tick, that tick is skipped (ACA would
start a parallel execution; every job is safe either way).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from croniter import croniter

from aca_jobs import JOBS, Job

log = logging.getLogger("ascent.jobs")

ROOT = Path(__file__).resolve().parent.parent
# Longest the loop sleeps before looking at the clock again (a suspended laptop resumes late).
MAX_WAIT_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


def next_time(job: Job, after: datetime) -> datetime:
    """The job's first scheduled time strictly after `after` (UTC)."""
    if job.schedule is None:
        raise ValueError(f"job {job.name} has no schedule")
    found: datetime = croniter(job.schedule, after.astimezone(UTC)).get_next(datetime)
    return found.astimezone(UTC)


@dataclass
class Execution:
    """One execution of a job in a child process, as the scheduler saw it."""

    name: str
    pid: int
    started_at: float
    exit_code: int | None = None
    duration: float | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobScheduler:
    """Runs the registry's scheduled jobs in child processes at their cron times."""

    def __init__(
        self,
        jobs: Iterable[Job] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = _now,
        cwd: Path = ROOT,
    ) -> None:
        """Schedule `jobs` (default: every job of aca_jobs.JOBS that has a schedule)."""
        chosen = JOBS.values() if jobs is None else jobs
        self.jobs = [job for job in chosen if job.schedule is not None]
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.cwd = cwd
        self.history: list[Execution] = []
        self._next: dict[str, datetime] = {}
        self._running: dict[str, tuple[subprocess.Popen[bytes], Execution]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plan(self, now: datetime) -> dict[str, datetime]:
        """Set every job's next time to its first occurrence after `now` (no run at start)."""
        self._next = {job.name: next_time(job, now) for job in self.jobs}
        return dict(self._next)

    def due(self, now: datetime) -> list[Job]:
        """The jobs whose time has come at `now`; each is re-planned after `now` (runs once)."""
        ready = [job for job in self.jobs if self._next.get(job.name, now) <= now]
        for job in ready:
            self._next[job.name] = next_time(job, now)
        return ready

    def launch(self, job: Job) -> Execution | None:
        """Start `python -m aca_jobs <name>` now; None when its last execution still runs."""
        with self._lock:
            running = self._running.get(job.name)
            if running is not None and running[0].poll() is None:
                log.warning("job %s: previous execution still running; tick skipped", job.name)
                return None
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "aca_jobs", job.name], cwd=self.cwd, env=self.env
            )
            execution = Execution(name=job.name, pid=process.pid, started_at=time.monotonic())
            self._running[job.name] = (process, execution)
            self.history.append(execution)
        log.info("job %s started (pid %d)", job.name, process.pid)
        threading.Thread(
            target=self._wait, args=(process, execution), name=f"job-{job.name}", daemon=True
        ).start()
        return execution

    def _wait(self, process: subprocess.Popen[bytes], execution: Execution) -> None:
        code = process.wait()
        execution.exit_code = code
        execution.duration = time.monotonic() - execution.started_at
        level = logging.INFO if code == 0 else logging.WARNING
        log.log(
            level,
            "job %s ended: exit code %d in %.2fs",
            execution.name,
            code,
            execution.duration,
        )
        execution.done.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            for job in self.due(now):
                self.launch(job)
            upcoming = min(self._next.values(), default=None)
            wait = MAX_WAIT_SECONDS
            if upcoming is not None:
                wait = max(0.0, min(wait, (upcoming - self.clock()).total_seconds()))
            self._stop.wait(wait)

    def start(self) -> None:
        """Plan from now and run the schedule in a background thread."""
        planned = self.plan(self.clock())
        for name, when in planned.items():
            log.info("job %s scheduled; next run %s", name, when.isoformat())
        self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and end running executions (SIGTERM, then SIGKILL after a grace)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_GRACE_SECONDS)
        with self._lock:
            running = [p for p, _ in self._running.values() if p.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
