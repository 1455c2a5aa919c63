# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup lint test test-unit test-sandbox demo sandbox-up sandbox-down sandbox-status build-sandbox bench clean

setup: $(STAMP)

# Reinstall only when pyproject.toml changes, so `make setup` is fast when nothing changed.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	@$(BIN)/python -m pip install -q -e . --group dev
	@touch $(STAMP)
	@echo "setup: .venv ready ($$($(BIN)/federator --version))"

lint: setup
	$(BIN)/ruff check federator tests scripts
	$(BIN)/ruff format --check federator tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

build-sandbox:
	scripts/sandbox/build.sh

sandbox-up: setup build-sandbox
	$(BIN)/federator sandbox up

sandbox-down: setup
	$(BIN)/federator sandbox down

sandbox-status: setup
	$(BIN)/federator sandbox status

# The whole suite: lint, unit tests, and everything that runs against the real sandbox.
test: setup build-sandbox lint
	$(BIN)/federator sandbox up
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest -q -m "not sandbox" $(PYTEST_ARGS)

demo: setup build-sandbox
	$(BIN)/python scripts/demo.py

bench: setup
	@for b in scripts/bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	-$(BIN)/federator sandbox down
	rm -rf $(VENV) .sandbox .mypy_cache .ruff_cache .pytest_cache
