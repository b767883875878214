#!/usr/bin/env bash
# Run the e2e suite against a control plane started here, and always stop it.
#
#   e2e/run.sh [pytest args...]
#
# With KUBECONFIG already pointing at a cluster (kind, or your own) and
# PODGATE_E2E_EXTERNAL=1, no control plane is started: the same tests run there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

if [[ "${PODGATE_E2E_EXTERNAL:-0}" != 1 ]]; then
  trap 'e2e/cluster.sh down' EXIT
  e2e/cluster.sh up
  eval "$(e2e/cluster.sh env)"
fi

"$PYTHON" -m pytest e2e -m e2e -p no:cacheprovider "$@"
