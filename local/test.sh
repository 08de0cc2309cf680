#!/usr/bin/env bash
# Run the test suite: start the local services the integration tests use if they are down,
# point DATABASE_URL at Postgres when it answers, and treat "no tests collected" as failure.
set -uo pipefail
cd "$(dirname "$0")/.."

pg_up() { .venv/bin/python - <<'PY' 2>/dev/null
import psycopg, sys
try:
    psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2).close()
except Exception:
    sys.exit(1)
PY
}

if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if [ -z "${DATABASE_URL:-}" ]; then
  if pg_up; then
    export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test"
  elif [ "${CI:-}" = "true" ]; then
    echo "CI needs PostgreSQL at 127.0.0.1:5432 and it does not answer" >&2
    exit 1
  else
    echo "PostgreSQL not reachable: the Postgres half of the suite will be skipped" >&2
  fi
fi

# Redis (rate-limit, session and cache tests): start the machine's server if it is down.
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && command -v redis-server >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done  # a just-started server needs a moment
if [ "${CI:-}" = "true" ] && ! redis_up; then
  echo "CI needs Redis at 127.0.0.1:6379 (session, cache and rate-limit tests)" >&2
  exit 1
fi

# Azurite (npm package `azurite`, pinned) for the queue tests; node_modules is gitignored.
if [ ! -x node_modules/.bin/azurite-queue ]; then
  if command -v npm >/dev/null 2>&1; then
    npm install --no-save --no-audit --no-fund --loglevel=error azurite@3.35.0 \
      || echo "azurite could not be installed" >&2
  fi
  if [ ! -x node_modules/.bin/azurite-queue ] && [ "${CI:-}" = "true" ]; then
    echo "CI needs Azurite (npm install azurite) for the queue tests" >&2
    exit 1
  fi
fi

# Debian's Chromium for the UI's browser tests (Playwright launches it by path; no browser
# download works here). Installed when missing, as Azurite is; CI fails without it.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the UI browser tests"
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed" >&2
fi
if ! command -v chromium >/dev/null 2>&1 && [ "${CI:-}" = "true" ]; then
  echo "CI needs Debian's chromium (apt-get install chromium) for tests/ui/test_browser.py" >&2
  exit 1
fi

# Independent test files run in parallel (one worker per file: a module's dev host is shared
# by its tests). Each worker gets its own Postgres database (tests/conftest.py).
.venv/bin/python -m pytest -n "${ASCENT_TEST_WORKERS:-4}" "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
