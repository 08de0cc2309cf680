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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("aca_jobs")
    started = time.monotonic()
    log.info("job %s started", args.name)
    try:
        code = JOBS[args.name].load()()
    except Exception:
        log.exception("job %s failed", args.name)
        code = 1
    log.info("job %s ended with %d in %.2fs", args.name, code, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
