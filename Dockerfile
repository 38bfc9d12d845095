# syntax=docker/dockerfile:1
# One image for every Trellis process: the gateway (default), each service, `trellis migrate` and `trellis sweep`.
#   make image                                   # builds trellis:dev where a Docker engine runs
#   docker run IMAGE                             # the gateway, with the portal, on :8000
#   docker run IMAGE python -m services.fidelity # a service, also on :8000 (its own container)
#   docker run IMAGE trellis migrate fidelity    # a migration Job; `trellis sweep fidelity` a CronJob
# It runs as uid/gid 10001 on a read-only root filesystem: only /tmp is written (an emptyDir in Kubernetes).
# Base images are pinned to a patch release (literal FROM lines, so hadolint and checkov see the tags); both
# Python stages use the same one, because the venv is copied across. CI may pin their digests as well.

# ---- 1. The web portal: `npm ci` from the committed lockfile, then `tsc -b && vite build`.
FROM node:20.20.2-bookworm-slim AS portal
WORKDIR /portal
# Dependencies in their own layer: a source change does not reinstall them. No package's install script runs:
# the build needs none (checked with `npm ci --ignore-scripts && npm run build`).
COPY portal/package.json portal/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY portal/ ./
RUN npm run build

# ---- 2. A virtualenv with Trellis installed from a wheel (not editable), production dependencies only.
FROM python:3.11.14-slim-bookworm AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The same path as in the final stage: a venv's scripts name their interpreter by absolute path.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The runtime dependencies first, read from pyproject.toml (never the dev extra), in a layer that a code
# change does not invalidate.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY trellis/ trellis/
COPY contracts/ contracts/
COPY readmodels/ readmodels/
COPY services/ services/
COPY gateway/ gateway/
COPY ops/ ops/
COPY devtools/ devtools/
# Bytecode is compiled here, so nothing needs writing at run time on a read-only root filesystem.
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q /opt/venv/lib/python3.11/site-packages

# ---- 3. The runtime: the slim Python base, the venv and the built portal; no compiler, no source tree, no Node.
FROM python:3.11.14-slim-bookworm AS runtime
# `make image` passes VERSION (pyproject's) and REVISION (the commit). The repository declares no licence yet:
# NOASSERTION is SPDX's word for that, until LICENSES is given.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/trellis-platform/trellis
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="trellis" \
      org.opencontainers.image.description="Trellis: implementation infrastructure that keeps evidence-based practice models from drifting (gateway, services, migrations, sweeps)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

RUN groupadd --system --gid 10001 trellis \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trellis

COPY --from=venv /opt/venv /opt/venv
COPY --from=portal /portal/dist /app/portal/dist

# Every process listens on 8000 in its own container (the contract of deploy/k8s). The gateway reaches the
# services through TRELLIS_<SERVICE>_BASE_URL, which the manifests set (e.g. http://fidelity:8000).
# A service added later adds its two lines here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TRELLIS_VAR_DIR=/tmp \
    TRELLIS_GATEWAY_PORTAL_DIR=/app/portal/dist \
    TRELLIS_GATEWAY_HOST=0.0.0.0 \
    TRELLIS_GATEWAY_PORT=8000 \
    TRELLIS_READINESS_HOST=0.0.0.0 \
    TRELLIS_READINESS_PORT=8000 \
    TRELLIS_FIDELITY_HOST=0.0.0.0 \
    TRELLIS_FIDELITY_PORT=8000 \
    TRELLIS_COACHING_HOST=0.0.0.0 \
    TRELLIS_COACHING_PORT=8000 \
    TRELLIS_COMMUNITY_HOST=0.0.0.0 \
    TRELLIS_COMMUNITY_PORT=8000

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# No curl in the slim base: the standard library asks /healthz (liveness: the process serves HTTP).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# A plain CMD, no ENTRYPOINT: a pod (or `docker run IMAGE ...`) names the process it wants.
# On 0.0.0.0 it refuses the public dev JWT secret: set TRELLIS_OIDC_ISSUER + TRELLIS_OIDC_JWKS_URL (or
# TRELLIS_JWT_SECRET).
CMD ["python", "-m", "gateway"]
