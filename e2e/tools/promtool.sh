#!/usr/bin/env bash
# Build promtool (Prometheus' rule checker and rule unit tester) from the Go
# module proxy, cached by version the way e2e/cluster.sh caches the control
# plane, and print its path. tests/chart/test_prometheus_rules.py runs it on the
# chart's PrometheusRule and on chart/tests/prometheus/*.yaml.
#
#   e2e/tools/promtool.sh           build (or reuse) and print the binary's path
#
# Environment:
#   PODGATE_CACHE           build cache                          [~/.cache/podgate]
#   PODGATE_PROMETHEUS_VERSION  the Go module version of github.com/prometheus/prometheus
#                           (Prometheus 3.x is published as v0.3MM.P)  [v0.316.0]
set -euo pipefail

# Prometheus 3.16.0; its go.mod says `go 1.26.7`, so it builds with Go 1.26.8
# under GOTOOLCHAIN=local, and it has no replace directives (go install works).
PROMETHEUS_VERSION=${PODGATE_PROMETHEUS_VERSION:-v0.316.0}
CACHE=${PODGATE_CACHE:-$HOME/.cache/podgate}
[[ $CACHE == /* ]] || CACHE="$PWD/$CACHE"

log() { printf '[promtool.sh] %s\n' "$*" >&2 || true; }
die() { printf '[promtool.sh] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed"
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:-}"

# v0.316.0 -> 3.16.0: what `promtool --version` reports, as upstream's Makefile sets it.
[[ $PROMETHEUS_VERSION =~ ^v0\.([0-9])([0-9]{2})\.([0-9]+)$ ]] ||
  die "PODGATE_PROMETHEUS_VERSION=$PROMETHEUS_VERSION is not a Prometheus 3.x module version (v0.3MM.P)"
release="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"

out="$CACHE/bin/promtool-$PROMETHEUS_VERSION/promtool"
stamp="$(go env GOVERSION) $PROMETHEUS_VERSION $ldflags"
fresh() { [[ -x $out && -f $out.stamp && "$(cat "$out.stamp")" == "$stamp" ]]; }

if ! fresh; then
  mkdir -p "$CACHE/bin"
  # One Go build at a time, shared with e2e/cluster.sh build (same lock file).
  exec 9>"$CACHE/.build.lock"
  flock 9
  if ! fresh; then # another invocation may have built it while we waited
    log "building promtool $PROMETHEUS_VERSION (Prometheus $release)"
    t0=$SECONDS
    gobin=$(dirname "$out")
    mkdir -p "$gobin"
    rm -f "$out" "$out.stamp"
    (cd "$CACHE" && GOBIN=$gobin go install -ldflags "$ldflags" \
      "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION") ||
      die "building promtool failed"
    printf '%s\n' "$stamp" >"$out.stamp"
    log "built promtool in $((SECONDS - t0))s"
  fi
  flock -u 9
fi
printf '%s\n' "$out"
