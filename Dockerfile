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
# Runtime base: python:3.11-slim, the same image as the build stage. The
# virtualenv built there points at /usr/local/bin/python3.11 and its console
# scripts carry that path in their shebang, so it runs unchanged when copied;
# distroless/python3 ships Debian's interpreter at another path and patch
# level, which would mean building against a different Python than the one
# that runs. Nothing at runtime needs a shell: the entrypoint, the chart's
# pre-delete hook and its `helm test` pod all run `podgate` or `python` directly.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY webhook/ webhook/

# Wheels for podgate and every dependency, then a virtualenv installed from
# those wheels alone; pip is removed from it afterwards (nothing installs at
# runtime). pip compiles the .pyc files here, so the read-only runtime never
# needs to write them.
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/podgate \
    && /opt/podgate/bin/pip install --no-index --find-links /wheels podgate \
    && /opt/podgate/bin/pip uninstall --yes pip \
    && /opt/podgate/bin/podgate --help > /dev/null

FROM python:3.11-slim-bookworm AS runtime

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
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

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
