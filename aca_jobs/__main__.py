"""`python -m aca_jobs <name>` runs one job once; `--list` prints the registry."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from aca_jobs import JOBS


def main(argv: list[str] | None = None) -> int:
    """Run the named job and return its exit code (non-zero on failure)."""
    parser = argparse.ArgumentParser(prog="python -m aca_jobs")
    parser.add_argument("name", nargs="?", choices=sorted(JOBS))
    parser.add_argument("--list", action="store_true", help="print the jobs and their schedules")
    args = parser.parse_args(argv)
    if args.list or args.name is None:
        for job in JOBS.values():
            print(f"{job.name}\t{job.schedule or 'manual'}\t{job.description}")
        return 0
    # Function-local: only a job run needs telemetry, not `--list`.
    from aca_jobs import steps
    from shared.core.settings import get_settings
    from shared.core.telemetry import setup_logging
    from shared.platform import observability

    setup_logging(logging.INFO, json_lines=get_settings().log_format == "json")
    log = logging.getLogger("aca_jobs")
    started = time.monotonic()
    steps.ROWS.clear()
    log.info("job %s started", args.name)
    # Each job run is a trace of its own (runs a cron enqueues are its children), and its
    # outcome, duration and rows are metrics, so a stuck or failing job shows up.
    with observability.span(f"job {args.name}", attributes={"ascent.job.name": args.name}) as span:
        try:
            code = JOBS[args.name].load()()
        except Exception:
            log.exception("job %s failed", args.name)
            code = 1
        rows = steps.ROWS[-1] if steps.ROWS else None
        span.set_attribute("ascent.job.exit_code", code)
        if rows is not None:
            span.set_attribute("ascent.job.rows", rows)
    seconds = time.monotonic() - started
    observability.job_ended(args.name, ok=code == 0, seconds=seconds, rows=rows)
    observability.shutdown()  # flush: the process exits now
    log.info("job %s ended with %d in %.2fs", args.name, code, seconds)
    return code


if __name__ == "__main__":
    sys.exit(main())
