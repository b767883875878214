#!/usr/bin/env bash
# Run the e2e suite against a cluster started here, and always take it down.
#
#   e2e/run.sh [pytest args...]
#
# 1. the control plane (e2e/cluster.sh up), and the suite that runs podgate as
#    a host process (fault injection, timing): e2e/ without e2e/node/;
# 2. the worker node and podgate's image built from the Dockerfile
#    (e2e/cluster.sh node, image), and the suite of podgate's own chart and
#    pods on it: e2e/node/. PODGATE_E2E_NODE=0 leaves this part out.
# Both parts run even when the first fails; the network guard must have
# dropped nothing, and `down` must leave the host as it found it.
#
# With KUBECONFIG already pointing at a cluster (kind, or your own) and
# PODGATE_E2E_EXTERNAL=1, no cluster is started: the first part runs there.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PYTEST=("$PYTHON" -m pytest -m e2e -p no:cacheprovider)
failed=()

log() { printf '\n==> %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# pytest exits 5 when a -k filter left nothing to run in a part: not a failure.
part() { # part NAME PYTEST-ARGS...
  local name=$1; shift
  "${PYTEST[@]}" "$@"
  local rc=$?
  if ((rc != 0 && rc != 5)); then failed+=("$name (pytest exit $rc)"); fi
}

if [[ "${PODGATE_E2E_EXTERNAL:-0}" == 1 ]]; then
  part "e2e" e2e --ignore=e2e/node "$@"
  ((${#failed[@]} == 0)) || { printf 'FAILED: %s\n' "${failed[@]}" >&2; exit 1; }
  exit 0
fi

trap 'e2e/cluster.sh down >/dev/null 2>&1' EXIT
e2e/cluster.sh up || exit 1
eval "$(e2e/cluster.sh env)"

log "e2e: podgate as a host process"
part "host-process suite" e2e --ignore=e2e/node "$@"

if [[ "${PODGATE_E2E_NODE:-1}" != 0 ]]; then
  log "e2e: the node, and podgate's image"
  if e2e/cluster.sh node && e2e/cluster.sh image; then
    log "e2e: podgate's chart and pods on the node"
    PODGATE_E2E_NODE=1 part "node suite" e2e/node "$@"
    drops=$(e2e/cluster.sh guard)
    echo "network guard: ${drops:-?} packets dropped (to or from outside this machine)"
    [[ $drops == 0 ]] || failed+=("network guard dropped ${drops:-?} packets")
  else
    failed+=("the node or the image did not come up")
  fi
fi

log "down"
trap - EXIT
e2e/cluster.sh down || failed+=("down left the host changed")

if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "e2e: all parts passed"
