# One command runner: the README, CI (.ci/run) and contributors all call these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint typecheck unit bench install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed  ## create .venv and install requirements

dev: install  ## run the dev host on the embedded default (SQLite, offline model)
	$(PY) -m local.devhost

test: install  ## lint, typecheck, import contracts, then the whole test suite (starts the services it needs)
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
