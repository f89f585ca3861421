# agentkpi: `make run` and `make test` on a fresh machine with nothing but Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Prefect keeps its temporary server's database here, not in the user's ~/.prefect.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: setup run report example-report test lint format bench clean

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

# The summaries of the latest complete day, week and month of the demo, under data/reports.
report: setup
	$(BIN)/agentkpi report --period day --warehouse data/warehouse.duckdb --out data/reports
	$(BIN)/agentkpi report --period week --warehouse data/warehouse.duckdb --out data/reports
	$(BIN)/agentkpi report --period month --warehouse data/warehouse.duckdb --out data/reports

# The example kept in docs/: the demo's weekly summary, and Chromium's rendering of it.
example-report: setup
	rm -rf docs/example-report
	$(BIN)/agentkpi report --period week --warehouse data/warehouse.duckdb --out docs/example-report
	chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
		--hide-scrollbars --window-size=900,5200 \
		--screenshot=docs/example-report/rendered.png \
		"file://$(CURDIR)/$$(ls docs/example-report/weekly/*.html | head -1)"

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
