# agentkpi: `make run` and `make test` on a fresh machine with nothing but Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Prefect keeps its temporary server's database here, not in the user's ~/.prefect.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: setup run test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/pip check
	touch $(STAMP)

run: setup
	$(BIN)/agentkpi demo --if-missing --out data/demo --flaw-rate 0.0002
	$(BIN)/agentkpi run --db-url sqlite:///$(CURDIR)/data/demo/agents.db \
		--logs-dir data/demo/logs --warehouse data/warehouse.duckdb

test: setup
	PREFECT_HOME=$(CURDIR)/.prefect-test $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m flows.bench

clean:
	rm -rf $(VENV) data .prefect .prefect-test
