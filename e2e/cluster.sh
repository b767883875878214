#!/usr/bin/env bash
# Real Kubernetes cluster for podgate's end-to-end tests, without Docker: a
# control plane (etcd, kube-apiserver, kube-controller-manager) on loopback and
# a worker node (containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS) on a
# local bridge, all built from the Go module proxy and Debian's packages and run
# as plain processes. See e2e/cluster/README.md.
#
#   e2e/cluster.sh build   build (or reuse) every binary: control plane, node, helm
#   e2e/cluster.sh up      build if needed, generate certs, start the control plane, wait until ready
#   e2e/cluster.sh node    add the worker node to the running control plane (root; Debian packages)
#   e2e/cluster.sh image   build podgate's image from the Dockerfile and import it into the node
#   e2e/cluster.sh env     print `export KUBECONFIG=...` / `export PATH=...` lines (eval "$(e2e/cluster.sh env)")
#   e2e/cluster.sh status  show what is running
#   e2e/cluster.sh down    stop the node and the control plane, undo every host change,
#                          remove the state dir (idempotent; exit 1 if the host was left changed)
#
# Environment:
#   PODGATE_CACHE       build cache (binaries, generated go.mod/go.sum)  [~/.cache/podgate]
#   PODGATE_E2E_DIR     state dir (certs, data, logs, pids, kubeconfig)  [/tmp/podgate-e2e]
#   PODGATE_E2E_TIMEOUT seconds to wait for each component to be ready   [120]
#   PODGATE_E2E_APISERVER_ARGS, PODGATE_E2E_CONTROLLER_MANAGER_ARGS
#                       extra flags (split on whitespace), e.g. --feature-gates=...
set -euo pipefail
# A failure inside $(...) fails the caller too.
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SRC="$HERE/cluster"
# shellcheck source=/dev/null # cluster/versions.env: KUBE_VERSION, ETCD_VERSION, HELM_VERSION, COREDNS_VERSION
source "$SRC/versions.env"

CACHE=${PODGATE_CACHE:-$HOME/.cache/podgate}
STATE=${PODGATE_E2E_DIR:-/tmp/podgate-e2e}
TIMEOUT=${PODGATE_E2E_TIMEOUT:-120}
[[ $CACHE == /* ]] || CACHE="$PWD/$CACHE"
[[ $STATE == /* ]] || STATE="$PWD/$STATE"
STATE=${STATE%/}
# Every process this script starts carries it: pid_of tells ours from a
# reused pid by it. It must be in this script's own initial environment, as
# /proc/PID/environ of a child that has forked but not yet exec'd shows its
# parent's initial environment: an export alone lost that race under load.
if [[ ${PODGATE_E2E_STATE:-} != "$STATE" ]]; then
  export PODGATE_E2E_STATE=$STATE
  exec "$HERE/cluster.sh" "$@"
fi
SERVICE_CIDR=10.0.0.0/24
FIRST_SERVICE_IP=10.0.0.1
MARKER=.podgate-e2e-state

# shellcheck source=cluster/node.sh
source "$SRC/node.sh"
# shellcheck source=cluster/image.sh
source "$SRC/image.sh"

log() { printf '[cluster.sh] %s\n' "$*" >&2 || true; }
die() { printf '[cluster.sh] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

bin_path() { # bin_path NAME -> path of the cached binary
  local name=$1 ver
  case $name in
    etcd) ver=$ETCD_VERSION ;;
    helm) ver=$HELM_VERSION ;;
    coredns) ver=$COREDNS_VERSION ;;
    pause) ver=e2e ;;
    kube-* | kubectl | kubelet) ver=$KUBE_VERSION ;;
    *) die "unknown binary $name" ;;
  esac
  printf '%s/bin/%s-%s/%s' "$CACHE" "$name" "$ver" "$name"
}

KUBE_BINARIES=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)

# ---------------------------------------------------------------- build ----

go_env() { # common environment for every go invocation
  export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:-}"
}

# stamp_ok BIN STAMP: the binary exists and was built from the same inputs.
stamp_ok() { [[ -x $1 && -f $1.stamp && "$(cat "$1.stamp")" == "$2" ]]; }

# prepare_module DIR CONTENT: write go.mod (from CONTENT, pre-tidy) and run
# `go mod tidy` when the wanted go.mod changed or go.sum is missing.
prepare_module() {
  local dir=$1 want=$2
  if [[ -f $dir/go.sum && -f $dir/go.mod.in && "$(cat "$dir/go.mod.in")" == "$want" ]]; then
    return 0
  fi
  log "resolving modules in $dir (go mod tidy)"
  local t0; t0=$(now)
  rm -f "$dir/go.sum" "$dir/go.mod.in"
  printf '%s\n' "$want" >"$dir/go.mod"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed in $dir"
  printf '%s\n' "$want" >"$dir/go.mod.in"
  log "modules resolved in $(elapsed "$t0")s"
}

# kube_gomod: go.mod of the wrapper module for k8s.io/kubernetes $KUBE_VERSION.
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0 and replaces them with ./staging/src/...; the module proxy serves
# no v0.0.0, so every such module is replaced by its published v0.N.P. The
# list is derived from the go.mod of that very version.
kube_gomod() {
  local gomod staging_ver mods
  gomod=$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f $gomod ]] || die "could not download the go.mod of k8s.io/kubernetes@$KUBE_VERSION"
  staging_ver="v0.${KUBE_VERSION#v1.}"
  mods=$(awk '
    /^require[[:space:]]+k8s\.io\/[^[:space:]]+[[:space:]]+v0\.0\.0$/ { print $2; next }
    /^[[:space:]]+k8s\.io\/[^[:space:]]+[[:space:]]+v0\.0\.0$/       { print $1 }
  ' "$gomod" | sort -u)
  [[ $(wc -l <<<"$mods") -ge 10 ]] || die "found too few v0.0.0 staging modules in $gomod: $mods"
  printf 'module podgate.local/e2e/kube\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
  local m
  for m in $mods; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_ver"; done
  printf ')\n'
}

build_kube() {
  local work="$CACHE/work/kube-$KUBE_VERSION" minor ldflags want name out stamp t0
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$work"
  # Fast path: nothing to do when every binary is built from the same inputs.
  local all_ok=1
  for name in "${KUBE_BINARIES[@]}"; do
    stamp="$(go env GOVERSION) $KUBE_VERSION $ldflags $(sha256sum <"$SRC/kube/cmd/$name/main.go" | cut -c1-16)"
    stamp_ok "$(bin_path "$name")" "$stamp" || all_ok=0
  done
  [[ $all_ok == 1 ]] && return 0

  # The list of commands is part of what `go mod tidy` must see again.
  want="$(kube_gomod)
// commands: ${KUBE_BINARIES[*]}"
  rm -rf "$work/cmd"; cp -r "$SRC/kube/cmd" "$work/cmd"
  prepare_module "$work" "$want"
  for name in "${KUBE_BINARIES[@]}"; do
    out=$(bin_path "$name")
    stamp="$(go env GOVERSION) $KUBE_VERSION $ldflags $(sha256sum <"$SRC/kube/cmd/$name/main.go" | cut -c1-16)"
    stamp_ok "$out" "$stamp" && continue
    log "building $name $KUBE_VERSION"
    t0=$(now)
    mkdir -p "$(dirname "$out")"
    (cd "$work" && go build -ldflags "$ldflags" -o "$out.tmp" "./cmd/$name") || die "building $name failed"
    mv -f "$out.tmp" "$out"
    printf '%s\n' "$stamp" >"$out.stamp"
    log "built $name in $(elapsed "$t0")s"
  done
}

build_etcd() {
  local work="$CACHE/work/etcd-$ETCD_VERSION" out stamp want t0
  out=$(bin_path etcd)
  stamp="$(go env GOVERSION) $ETCD_VERSION -s -w $(sha256sum <"$SRC/etcd/main.go" | cut -c1-16)"
  stamp_ok "$out" "$stamp" && return 0
  mkdir -p "$work"
  cp "$SRC/etcd/main.go" "$work/main.go"
  want=$(printf 'module podgate.local/e2e/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION")
  prepare_module "$work" "$want"
  log "building etcd $ETCD_VERSION"
  t0=$(now)
  mkdir -p "$(dirname "$out")"
  (cd "$work" && go build -ldflags "-s -w" -o "$out.tmp" .) || die "building etcd failed"
  mv -f "$out.tmp" "$out"
  printf '%s\n' "$stamp" >"$out.stamp"
  log "built etcd in $(elapsed "$t0")s"
}

build_helm() {
  local gomod k8s ldflags
  gomod=$(cd "$CACHE" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f $gomod ]] || die "could not download the go.mod of helm.sh/helm/v3@$HELM_VERSION"
  # Like Helm's Makefile: version, and the default Kubernetes version used by
  # `helm template`/`helm lint` derived from the client-go it is built with.
  k8s=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$gomod")
  k8s=${k8s#v}  # v0.37.0 -> 0.37.0: Kubernetes 1.37
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  if [[ $k8s =~ ^([0-9]+)\.([0-9]+)\. ]]; then
    local maj=$((BASH_REMATCH[1] + 1)) min=${BASH_REMATCH[2]} p
    for p in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=$maj -X helm.sh/helm/v3/$p.k8sVersionMinor=$min"
    done
  fi
  go_install_cached helm "helm.sh/helm/v3/cmd/helm" "$HELM_VERSION" "$ldflags"
}

# go_install_cached NAME PACKAGE VERSION LDFLAGS: `go install PACKAGE@VERSION`
# into NAME's cache folder, unless the binary there was built from the same.
go_install_cached() {
  local name=$1 package=$2 version=$3 ldflags=$4 out stamp t0 gobin
  out=$(bin_path "$name")
  stamp="$(go env GOVERSION) $version $ldflags"
  stamp_ok "$out" "$stamp" && return 0
  log "building $name $version"
  t0=$(now)
  gobin="$(dirname "$out")"
  mkdir -p "$gobin"
  rm -f "$out"
  (cd "$CACHE" && GOBIN=$gobin go install -ldflags "$ldflags" "$package@$version") ||
    die "building $name failed"
  printf '%s\n' "$stamp" >"$out.stamp"
  log "built $name in $(elapsed "$t0")s"
}

cmd_build() {
  command -v go >/dev/null || die "go is not installed"
  go_env
  mkdir -p "$CACHE/bin" "$CACHE/work"
  # One build at a time, also across concurrent invocations.
  exec 9>"$CACHE/.build.lock"
  flock 9
  local t0; t0=$(now)
  build_etcd
  build_kube
  build_helm
  build_coredns
  build_pause
  flock -u 9
  log "binaries ready in $(elapsed "$t0")s"
  local name
  for name in etcd "${KUBE_BINARIES[@]}" helm coredns pause; do
    printf '%s\n' "$(bin_path "$name")"
  done
}

# ------------------------------------------------------------- runtime ----

COMPONENTS=(etcd kube-apiserver kube-controller-manager) # start order

pid_of() { # pid_of NAME -> pid if it is alive and ours
  local f="$STATE/pids/$1.pid" pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # Guard against pid reuse: our processes carry the state dir in their
  # environment. A process in the middle of an exec shows an empty environ
  # for a moment, so a live one is asked a few times.
  local try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$pid" 2>/dev/null || return 1
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF -- "PODGATE_E2E_STATE=$STATE"; then
      printf '%s' "$pid"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

stop_one() { # stop_one NAME: TERM the process group, KILL after 15 s
  local name=$1 pid i
  pid=$(pid_of "$name") || { rm -f "$STATE/pids/$name.pid"; return 0; }
  local t0; t0=$(now)
  log "stopping $name (pid $pid)"
  # The group of a live leader is ours: it carries our state dir (pid_of).
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop after 15s; sending KILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # Anything left in its process group goes too: only what carries our state
  # dir, since the group's id may be a reused pid by now.
  local member
  for member in $(ps -eo pid=,pgid= | awk -v g="$pid" '$2 == g { print $1 }'); do
    if tr '\0' '\n' <"/proc/$member/environ" 2>/dev/null | grep -qxF -- "PODGATE_E2E_STATE=$STATE"; then
      kill -KILL "$member" 2>/dev/null || true
    fi
  done
  rm -f "$STATE/pids/$name.pid"
  log "stopped $name in $(elapsed "$t0")s"
}

stop_all() {
  node_down
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_one "${COMPONENTS[i]}"; done
}

free_ports() { # free_ports N: N distinct free loopback ports outside the ephemeral range
  python3 - "$1" <<'EOF'
import random, socket, sys
n, ports = int(sys.argv[1]), []
while len(ports) < n:
    p = random.randrange(20000, 32000)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(p)
print(" ".join(map(str, ports)))
EOF
}

gen_certs() {
  local d="$STATE/certs"
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    mkca() { # mkca NAME CN
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 30 \
        -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    }
    sign() { # sign CA NAME SUBJ EXTENSIONS
      openssl req -newkey rsa:2048 -nodes -keyout "$2.key" -out "$2.csr" -subj "$3" 2>/dev/null
      printf '%s\n' "$4" >"$2.ext"
      openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial -days 30 \
        -extfile "$2.ext" -out "$2.crt" 2>/dev/null
      rm -f "$2.csr" "$2.ext"
    }
    local client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    mkca ca podgate-e2e-ca
    sign ca apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$FIRST_SERVICE_IP"
    sign ca admin "/O=system:masters/CN=podgate-e2e-admin" "$client"
    sign ca controller-manager "/CN=system:kube-controller-manager" "$client"
    # What the API server presents to a kubelet (kubectl logs, exec).
    sign ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    # Request-header (front proxy) authentication, as kubeadm sets it up: used
    # by aggregated API servers and read by the controller manager's
    # delegated authentication.
    mkca front-proxy-ca podgate-e2e-front-proxy-ca
    sign front-proxy-ca front-proxy-client "/CN=front-proxy-client" "$client"
    # What the API server presents to admission webhooks that ask for a client
    # certificate (podgate serve --client-ca): a CA of its own, so trusting it
    # trusts no other client of this cluster.
    mkca webhook-client-ca podgate-e2e-webhook-client-ca
    sign webhook-client-ca webhook-client "/CN=kube-apiserver-webhook-client" "$client"
    # Service-account token signing key pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 644 ./*.crt sa.pub
  ) || die "generating certificates with openssl failed"
}

write_kubeconfig() { # write_kubeconfig FILE CERTNAME USER
  local ca crt key
  ca=$(base64 -w0 <"$STATE/certs/ca.crt")
  crt=$(base64 -w0 <"$STATE/certs/$2.crt")
  key=$(base64 -w0 <"$STATE/certs/$2.key")
  (
    umask 077
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: podgate-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $ca
users:
- name: $3
  user:
    client-certificate-data: $crt
    client-key-data: $key
contexts:
- name: podgate-e2e
  context:
    cluster: podgate-e2e
    user: $3
current-context: podgate-e2e
EOF
  )
}

start() { # start NAME ARGS...: run the binary NAME (see bin_path) detached
  local name=$1; shift
  start_cmd "$name" "$(bin_path "$name")" "$@"
}

start_cmd() { # start_cmd NAME COMMAND ARGS...: run detached in its own session/process group
  local name=$1; shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  printf '%q ' "$@" >"$STATE/logs/$name.cmd"
  setsid "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$STATE/pids/$name.pid"
  log "started $name (pid $pid, log $STATE/logs/$name.log)"
}

fail_start() { # fail_start NAME MESSAGE
  log "$1: $2"
  if [[ -f $STATE/logs/$1.log ]]; then
    printf -- '----- last 40 lines of %s -----\n' "$STATE/logs/$1.log" >&2
    tail -n 40 "$STATE/logs/$1.log" >&2 || true
    printf -- '-----\n' >&2
  fi
  exit 1 # the EXIT trap of cmd_up stops what was started
}

UP_DONE=0
up_abort() { # EXIT trap of cmd_up: stop what a failed or interrupted `up` started
  [[ $UP_DONE == 1 ]] && return 0
  log "up did not finish; stopping what was started; logs stay in $STATE/logs; '$0 down' removes them"
  stop_all
}

wait_for() { # wait_for NAME DESCRIPTION COMMAND...: poll COMMAND until it succeeds
  local name=$1 what=$2; shift 2
  local t0 deadline; t0=$(now); deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    pid_of "$name" >/dev/null || fail_start "$name" "exited while waiting for $what"
    ((SECONDS < deadline)) || fail_start "$name" "not ready after ${TIMEOUT}s waiting for $what"
    sleep 0.25
  done
  log "$name ready ($what) after $(elapsed "$t0")s"
}

curl_ok() { # curl_ok URL [ARGS]: HTTP 200 and body "ok" (or etcd health true)
  local body
  body=$(curl -sS --max-time 5 "$@") || return 1
  [[ $body == ok || $body == *'"health":"true"'* ]]
}

write_admission_config() { # the API server's client certificate for every webhook
  local c="$STATE/certs"
  cat >"$STATE/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate: $c/webhook-client.crt
      client-key: $c/webhook-client.key
EOF
  local plugin
  {
    printf 'apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n'
    for plugin in ValidatingAdmissionWebhook MutatingAdmissionWebhook; do
      printf '  - name: %s\n    configuration:\n' "$plugin"
      printf '      apiVersion: apiserver.config.k8s.io/v1\n      kind: WebhookAdmissionConfiguration\n'
      printf '      kubeConfigFile: %s\n' "$STATE/webhook-client.kubeconfig"
    done
  } >"$STATE/admission-control.yaml"
}

cmd_up() {
  local t_all; t_all=$(now)
  if pid_of kube-apiserver >/dev/null && [[ -f $STATE/kubeconfig ]] &&
    "$(bin_path kubectl)" --kubeconfig "$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    log "already up; kubeconfig: $STATE/kubeconfig"
    printf '%s\n' "$STATE/kubeconfig"
    return 0
  fi
  command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"
  command -v python3 >/dev/null || die "python3 is not installed"
  cmd_build >/dev/null
  [[ -d $STATE ]] && cmd_down # leftovers of an earlier run
  mkdir -p "$STATE"
  touch "$STATE/$MARKER"
  # Whatever happens from here (error, Ctrl-C, closed pipe), leave nothing running.
  trap up_abort EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap '' PIPE
  mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/etcd"
  chmod 700 "$STATE/etcd"

  local t_up; t_up=$(now)
  read -r ETCD_PORT PEER_PORT API_PORT KCM_PORT <<<"$(free_ports 4)"
  printf 'ETCD_PORT=%s\nPEER_PORT=%s\nAPI_PORT=%s\nKCM_PORT=%s\n' \
    "$ETCD_PORT" "$PEER_PORT" "$API_PORT" "$KCM_PORT" >"$STATE/ports.env"
  gen_certs
  write_kubeconfig "$STATE/kubeconfig" admin podgate-e2e-admin
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  write_admission_config
  local c="$STATE/certs" api_extra kcm_extra
  read -r -a api_extra <<<"${PODGATE_E2E_APISERVER_ARGS:-}"
  read -r -a kcm_extra <<<"${PODGATE_E2E_CONTROLLER_MANAGER_ARGS:-}"

  start etcd \
    --name=podgate-e2e \
    --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$PEER_PORT" \
    --initial-cluster="podgate-e2e=http://127.0.0.1:$PEER_PORT" \
    --unsafe-no-fsync=true \
    --log-level=warn
  wait_for etcd /health curl_ok "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver \
    --bind-address=127.0.0.1 \
    --secure-port="$API_PORT" \
    --advertise-address="$NODE_IP" \
    --endpoint-reconciler-type=lease \
    --kubelet-preferred-address-types=InternalIP \
    --kubelet-client-certificate="$c/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$c/apiserver-kubelet-client.key" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --cert-dir="$STATE/apiserver-certs" \
    --tls-cert-file="$c/apiserver.crt" \
    --tls-private-key-file="$c/apiserver.key" \
    --client-ca-file="$c/ca.crt" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --allow-privileged=true \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$c/sa.pub" \
    --service-account-signing-key-file="$c/sa.key" \
    --requestheader-client-ca-file="$c/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$c/front-proxy-client.crt" \
    --proxy-client-key-file="$c/front-proxy-client.key" \
    --admission-control-config-file="$STATE/admission-control.yaml" \
    --profiling=false \
    "${api_extra[@]}"
  wait_for kube-apiserver /readyz curl_ok "https://127.0.0.1:$API_PORT/readyz" \
    --cacert "$c/ca.crt" --cert "$c/admin.crt" --key "$c/admin.key"

  start kube-controller-manager \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$STATE/controller-manager-certs" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$c/sa.key" \
    --root-ca-file="$c/ca.crt" \
    --cluster-signing-cert-file="$c/ca.crt" \
    --cluster-signing-key-file="$c/ca.key" \
    --cluster-name=podgate-e2e \
    --profiling=false \
    "${kcm_extra[@]}"
  wait_for kube-controller-manager /healthz curl_ok "https://127.0.0.1:$KCM_PORT/healthz" --insecure
  # Pods are refused until the serviceaccount controller made `default`.
  wait_for kube-controller-manager "serviceaccount default/default" \
    "$(bin_path kubectl)" --kubeconfig "$STATE/kubeconfig" -n default get serviceaccount default

  UP_DONE=1
  trap - EXIT INT TERM
  log "control plane $KUBE_VERSION up in $(elapsed "$t_up")s ($(elapsed "$t_all")s with build check)"
  log "kubeconfig: $STATE/kubeconfig   (eval \"\$($0 env)\")"
  printf '%s\n' "$STATE/kubeconfig"
}

cmd_env() {
  local k h
  k=$(bin_path kubectl); h=$(bin_path helm)
  [[ -x $k && -x $h ]] || log "warning: binaries not built yet; run '$0 build'"
  [[ -f $STATE/kubeconfig ]] || log "warning: no kubeconfig at $STATE/kubeconfig; run '$0 up'"
  printf 'export KUBECONFIG=%q\n' "$STATE/kubeconfig"
  # the CA of the client certificate the API server presents to webhooks
  printf 'export PODGATE_E2E_WEBHOOK_CLIENT_CA=%q\n' "$STATE/certs/webhook-client-ca.crt"
  # shellcheck disable=SC2016 # $PATH is expanded by the caller's eval
  printf 'export PATH=%q:%q:$PATH\n' "$(dirname "$k")" "$(dirname "$h")"
}

cmd_status() {
  local name pid rc=0
  for name in "${COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do
    [[ " ${NODE_COMPONENTS[*]} " == *" $name "* && ! -d $(node_dir) ]] && continue
    if pid=$(pid_of "$name"); then
      printf '%-24s running  pid %-8s rss %s kB\n' "$name" "$pid" "$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")"
    else
      printf '%-24s stopped\n' "$name"; rc=1
    fi
  done
  [[ -f $STATE/ports.env ]] && sed 's/^/  /' "$STATE/ports.env"
  if [[ -f $(node_dir)/ports.env ]]; then sed 's/^/  /' "$(node_dir)/ports.env"; fi
  local drops; drops=$(guard_drops)
  if [[ -n $drops ]]; then printf 'network guard: %s packets dropped\n' "$drops"; fi
  return "$rc"
}

cmd_down() {
  if [[ ! -e $STATE ]]; then
    log "nothing to stop ($STATE does not exist)"
    return 0
  fi
  [[ -n $STATE && $STATE != / && -d $STATE ]] || die "refusing to touch state dir '$STATE'"
  if [[ ! -f $STATE/$MARKER ]] && [[ -n "$(ls -A "$STATE")" ]]; then
    die "$STATE is not a podgate e2e state dir (no $MARKER); refusing to delete it"
  fi
  stop_all
  # Ports must be free now.
  if [[ -f $STATE/ports.env ]]; then
    local _ p
    while IFS="=" read -r _ p; do
      if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then log "warning: port $p is still listening"; fi
    done <"$STATE/ports.env"
  fi
  rm -rf --one-file-system "$STATE"
  log "down; removed $STATE"
  if [[ ${HOST_DIRTY:-0} == 1 ]]; then
    log "ERROR: the host was left changed (see above)"
    return 1
  fi
}

case ${1:-} in
  build) cmd_build ;;
  up) cmd_up ;;
  node) cmd_node ;;
  image) cmd_image ;;
  guard) guard_drops ;;
  env) cmd_env ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *)
    sed -n '2,26s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
