# One command runner: the README, CI (.ci/run) and contributors all call these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint typecheck unit bench install ui-install lock clean

# The lock files pin every package (the image installs requirements.lock, CI and .venv
# requirements-dev.lock); requirements*.txt hold the ranges they are compiled from.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --no-annotate --custom-compile-command "make lock" \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28

# pip prints one line per package it collects and installs, so the first install (about 90 s)
# shows its progress instead of a silent wait.
$(VENV)/.installed: requirements.lock requirements-dev.lock
	@echo "Creating $(VENV) and installing the locked requirements (about 90 s the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.lock
	@echo "Installed. Next: the dev host starts."
	touch $@

install: $(VENV)/.installed  ## create .venv and install the locked requirements

# The UI (Chainlit) has its own virtualenv: its pins (starlette, fastapi, ...) are not the
# function app's. pip prints each package as it installs, so a first install shows progress.
UI_VENV := ui/.venv
$(UI_VENV)/.installed: ui/requirements.lock
	$(PYTHON) -m venv $(UI_VENV)
	@echo "installing the UI's requirements into $(UI_VENV) (Chainlit; first time takes a minute)"
	$(UI_VENV)/bin/python -m pip install --disable-pip-version-check -r ui/requirements.lock
	touch $@

ui-install: $(UI_VENV)/.installed  ## create ui/.venv and install the UI's locked requirements

lock: install  ## recompile the lock files after editing requirements.txt or requirements-dev.txt
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock
	$(UV_COMPILE) ui/requirements.txt -o ui/requirements.lock

dev: install ui-install  ## run the dev host and the UI on the embedded default (SQLite, offline model)
	$(PY) -m local.uihost

test: install ui-install  ## lint, typecheck, import contracts, then the whole test suite (starts the services it needs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	bash local/test.sh

lint: install  ## ruff, and the import contracts (no cycles, wings import downward)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

bench: install  ## print the benchmark figures
	$(PY) -m bench.turn_overhead

clean:
	rm -rf $(VENV) .ascent .pytest_cache .mypy_cache .ruff_cache
