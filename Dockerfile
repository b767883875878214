# syntax=docker/dockerfile:1
#
# podgate's container image: the webhook (`podgate serve`, the default), the
# background audit (`podgate audit --watch`) and the chart's hook and test pods.
#
#   docker build -t podgate:dev .
#   docker build -t ghcr.io/podgate/podgate:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# Runtime base: python:3.11-slim-bookworm, the same image as the build stage
# (BASE_IMAGE). The virtualenv built there points at /usr/local/bin/python3.11
# and its console scripts carry that path in their shebang, so it runs
# unchanged when copied; distroless/python3 ships Debian's interpreter at
# another path and patch level, which would mean building against a different
# Python than the one that runs. Nothing at runtime needs a shell: the
# entrypoint, the chart's pre-delete hook and its `helm test` pod all run
# `podgate` or `python` directly.
#
# Reproducible: every Python package comes from requirements.lock, at the
# version and sha256 it names (pip refuses anything else), and podgate's own
# wheel is built with the locked setuptools/wheel, without build isolation, so
# nothing unpinned is fetched. The lock is made from pyproject.toml (a test
# checks the two agree) with pip-tools, the `tracing` extra included, so the
# image can trace admissions when the chart's `tracing.enabled` asks for it:
#
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --all-build-deps \
#     --extra tracing --no-emit-index-url --no-emit-find-links \
#     -o requirements.lock pyproject.toml
#
# The base is named by tag. To pin it by digest, where a registry is reachable
# (skopeo from Debian; `crane digest` prints the same), run from the repository:
#
#   d=$(skopeo inspect --format '{{.Digest}}' docker://docker.io/library/python:3.11-slim-bookworm) &&
#     sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=python:3.11-slim-bookworm@$d|" Dockerfile
#
# The e2e suite builds this file unchanged with `buildah bud`, passing a local
# stand-in for the base as BASE_IMAGE (e2e/cluster/README.md says how it differs).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The locked dependencies first: this layer is reused while only podgate changes.
# The base's pip installs into a venv without a pip of its own (--python).
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/podgate \
    && python -m pip --python /opt/podgate/bin/python install \
        --require-hashes --no-deps --only-binary :all: -r requirements.lock

# Only what the wheel is built from (see .dockerignore). The build tools are
# the lock's setuptools and wheel, removed once podgate is installed; pip
# compiles the .pyc files here, so the read-only runtime never writes them.
COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY webhook/ webhook/
RUN python -m pip --python /opt/podgate/bin/python install \
        --no-deps --no-build-isolation --no-index . \
    && python -m pip --python /opt/podgate/bin/python uninstall --yes setuptools wheel \
    && /opt/podgate/bin/podgate --help > /dev/null

FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="podgate" \
      org.opencontainers.image.description="Kubernetes admission controller whose policies are plain, typed Python" \
      org.opencontainers.image.url="https://github.com/podgate/podgate" \
      org.opencontainers.image.source="https://github.com/podgate/podgate" \
      org.opencontainers.image.documentation="https://github.com/podgate/podgate#readme" \
      org.opencontainers.image.vendor="podgate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# The base image's own pip/setuptools/wheel are not used at runtime either.
RUN python -m pip uninstall --yes pip setuptools wheel

COPY --from=build /opt/podgate /opt/podgate

# Read-only root filesystem: no bytecode written at import, unbuffered logs,
# and HOME/TMPDIR on /tmp (an emptyDir in the chart) for anything that must
# write. UID 65532 has no passwd entry, so HOME is set explicitly.
ENV PATH="/opt/podgate/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

USER 65532:65532

# 8443: HTTPS admission (/validate, /mutate); 8080: plain HTTP /healthz, /readyz, /metrics.
EXPOSE 8443 8080

ENTRYPOINT ["podgate", "serve"]
