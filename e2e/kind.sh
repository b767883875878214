#!/usr/bin/env bash
# The e2e suite on a kind cluster, for machines with a Docker engine.
#
#   e2e/kind.sh [pytest args...]
#
# Builds the podgate image, creates a kind cluster, loads the image into it
# (so `helm install` of the chart runs real pods there), and runs the same
# suite as e2e/run.sh. podgate itself runs on this host, as with the local
# control plane; the kind API server reaches it through the docker network's
# gateway address, which goes into podgate's certificate as a SAN.
#
# NOT RUN on the machine podgate is developed on: it has no Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${KIND_CLUSTER:-podgate-e2e}
IMAGE=${PODGATE_IMAGE:-ghcr.io/podgate/podgate:0.1.0}   # the chart's default image
PYTHON=${PYTHON:-.venv/bin/python}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool is not on PATH" >&2; exit 2; }
done

docker build -t "$IMAGE" .
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
  trap 'kind delete cluster --name "$CLUSTER"' EXIT
fi
kind load docker-image "$IMAGE" --name "$CLUSTER"

export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
# The API server runs in the node container: it reaches this host at the
# gateway of the "kind" docker network.
PODGATE_E2E_WEBHOOK_HOST=$(docker network inspect kind \
  -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
export PODGATE_E2E_WEBHOOK_HOST PODGATE_E2E_EXTERNAL=1

e2e/run.sh "$@"
