# shellcheck shell=bash
# The e2e worker node, sourced by e2e/cluster.sh (which defines log, die, start,
# stop_one, wait_for, bin_path, STATE, CACHE...). See README.md, "The node".
#
# One node beside the control plane: containerd + runc + CNI bridge (Debian's
# packages), kubelet, kube-proxy and kube-scheduler (the pinned Kubernetes
# module), CoreDNS on the bridge address, and a relay that lets pods reach the
# API server on loopback. Pods live on the bridge $NODE_BRIDGE; a guard drops
# anything that would leave or enter it from anywhere but this machine.
#
# Host changes and how each is undone by node_down (also after a failed test):
#   mounts, netns, shim sockets, /var/lib/cni, /var/log/pods: all made inside a
#     private mount namespace (tmpfs on /run, /var/lib, /var/log) that dies
#     with the node's processes, so nothing of it is ever visible on the host;
#   processes: by pid (components), by cgroup (containers), by cmdline (shims);
#   cgroups under /$NODE_CGROUP_ROOT: removed once empty;
#   bridge, iptables chains (ours, kube-proxy's, kubelet's): deleted;
#   sysctls the kubelet, the bridge and kube-proxy set: restored from a copy;
# and down compares the host with the copy it took before `node` started.

NODE_NAME=podgate-e2e-node
NODE_BRIDGE=podgate0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/16
NODE_CGROUP_ROOT=podgate-e2e
GUARD_CHAIN=PODGATE-E2E-GUARD
PAUSE_IMAGE=podgate.local/pause:e2e
NODE_COMPONENTS=(node-namespace api-relay coredns containerd kubelet kube-proxy kube-scheduler)
# Host tunables the node's parts set (kubelet: vm/kernel; CNI bridge:
# ip_forward; kube-proxy: route_localnet unless told not to): saved, restored.
NODE_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack socat buildah mmdebstrap)

node_dir() { printf '%s/node' "$STATE"; }

# ---------------------------------------------------------------- build ----

build_coredns() {
  go_install_cached coredns "github.com/coredns/coredns" "$COREDNS_VERSION" "-s -w"
}

build_pause() {
  local work="$CACHE/work/pause" out stamp t0
  out=$(bin_path pause)
  stamp="$(go env GOVERSION) -s -w $(sha256sum <"$SRC/pause/main.go" | cut -c1-16)"
  stamp_ok "$out" "$stamp" && return 0
  mkdir -p "$work" "$(dirname "$out")"
  cp "$SRC/pause/main.go" "$work/main.go"
  printf 'module podgate.local/e2e/pause\n\ngo 1.26\n' >"$work/go.mod"
  t0=$(now)
  (cd "$work" && go build -ldflags "-s -w" -o "$out.tmp" .) || die "building pause failed"
  mv -f "$out.tmp" "$out"
  printf '%s\n' "$stamp" >"$out.stamp"
  log "built pause in $(elapsed "$t0")s"
}

node_packages_missing() { # prints the Debian packages the node needs and lacks
  local p
  for p in "${NODE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
  return 0
}

# ----------------------------------------------------------- host state ----

# host_snapshot DIR: what the node may change on this host, for restoring
# the sysctls and for comparing after down.
host_snapshot() {
  local d=$1 k
  mkdir -p "$d"
  for k in "${NODE_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$k" "$(sysctl -n "$k" 2>/dev/null || echo '<absent>')"
  done >"$d/sysctls"
  # Volatile counters and random values aside, every tunable of the host.
  sysctl -a 2>/dev/null | awk '!/^(kernel\.random|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.(dentry-state|inode-nr|inode-state|file-nr|quota)|net\.netfilter\.nf_conntrack_count|kernel\.sched_domain|vm\.stat|fs\.binfmt_misc|dev\.cdrom|kernel\.perf_event_max|kernel\.tainted|net\.ipv6\.conf\.(veth|cni|podgate)|net\.ipv4\.conf\.(veth|cni|podgate)|net\.ipv[46]\.neigh\.(veth|cni|podgate))/' >"$d/sysctl-all"
  # Rules, chains and policies that do something: an empty table with its
  # built-in chains accepting all is the same as no table (nft keeps one once
  # it has been used, and iptables cannot delete it).
  local filter='/^(#|\*|COMMIT)/ || /^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT/ { next }
    { gsub(/ \[[0-9]+:[0-9]+\]/, ""); print }'
  { iptables-save 2>/dev/null || true; } | awk "$filter" | sort >"$d/iptables"
  { ip6tables-save 2>/dev/null || true; } | awk "$filter" | sort >"$d/ip6tables"
  ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort >"$d/links"
  ip netns list 2>/dev/null | sort >"$d/netns" || true
  findmnt -rn -o TARGET | sort >"$d/mounts"
  local p
  for p in /run/containerd /run/netns /var/lib/cni /var/log/pods /var/log/containers /etc/cni /var/lib/containers "/sys/fs/cgroup/cpu/$NODE_CGROUP_ROOT"; do
    if [[ -e $p ]]; then printf '%s\n' "$p"; fi
  done >"$d/paths"
}

# host_compare BEFORE AFTER: differences, one per line; empty when none.
host_compare() {
  local f
  for f in sysctl-all iptables ip6tables links netns mounts paths; do
    diff -U0 "$1/$f" "$2/$f" | grep -E '^[-+][^-+]' | sed "s|^|$f: |" || true
  done
}

restore_sysctls() { # restore_sysctls FILE
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [[ $v == '<absent>' ]] && continue
    [[ "$(sysctl -n "$k" 2>/dev/null)" == "$v" ]] && continue
    sysctl -q -w "$k=$v" >/dev/null 2>&1 || log "warning: could not restore $k=$v"
  done <"$1"
}

# ------------------------------------------------------------- network ----

net_up() {
  ip link add "$NODE_BRIDGE" type bridge 2>/dev/null || die "could not create bridge $NODE_BRIDGE (is another node up?)"
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # The guard: pods talk to each other and to this host, to nothing else.
  # Forwarded traffic in or out of the bridge that does not stay on it is
  # dropped and counted; `guard_drops` reads the count.
  local ipt
  for ipt in iptables ip6tables; do
    "$ipt" -w -t mangle -N "$GUARD_CHAIN"
    "$ipt" -w -t mangle -A "$GUARD_CHAIN" -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j RETURN
    "$ipt" -w -t mangle -A "$GUARD_CHAIN" -i "$NODE_BRIDGE" -j DROP
    "$ipt" -w -t mangle -A "$GUARD_CHAIN" -o "$NODE_BRIDGE" -j DROP
    "$ipt" -w -t mangle -I FORWARD 1 -j "$GUARD_CHAIN"
  done
}

guard_drops() { # packets the guard dropped (v4 + v6); empty if no guard
  local ipt n total=0 found=0
  for ipt in iptables ip6tables; do
    n=$("$ipt" -w -t mangle -L "$GUARD_CHAIN" -v -n -x 2>/dev/null | awk '$3 == "DROP" { s += $1 } END { print s + 0 }') || continue
    found=1; total=$((total + n))
  done
  if [[ $found == 1 ]]; then printf '%s\n' "$total"; fi
}

net_down() {
  local ipt chain
  for ipt in iptables ip6tables; do
    while "$ipt" -w -t mangle -D FORWARD -j "$GUARD_CHAIN" 2>/dev/null; do :; done
    "$ipt" -w -t mangle -F "$GUARD_CHAIN" 2>/dev/null || true
    "$ipt" -w -t mangle -X "$GUARD_CHAIN" 2>/dev/null || true
  done
  # kube-proxy's own cleanup, then what the kubelet adds and it leaves.
  if [[ -x $(bin_path kube-proxy) ]]; then
    "$(bin_path kube-proxy)" --cleanup >/dev/null 2>&1 || true
  fi
  for ipt in iptables ip6tables; do
    for table in filter nat mangle; do
      for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$ipt" -w -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $0 ~ ("-j " c "( |$)") { $1 = "-D"; print }' |
          while read -r -a rule; do "$ipt" -w -t "$table" "${rule[@]}" 2>/dev/null || true; done
        "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$NODE_BRIDGE"; fi
  # Host ends of pod veths go with their netns; any left are removed here.
  local veth
  for veth in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//'); do
    ip link delete "$veth" 2>/dev/null || true
  done
  return 0
}

# --------------------------------------------------------------- certs ----

node_certs() {
  local d="$STATE/certs" client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  (
    cd "$d"
    umask 077
    sign() { # same as gen_certs' sign
      openssl req -newkey rsa:2048 -nodes -keyout "$2.key" -out "$2.csr" -subj "$3" 2>/dev/null
      printf '%s\n' "$4" >"$2.ext"
      openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial -days 30 \
        -extfile "$2.ext" -out "$2.crt" 2>/dev/null
      rm -f "$2.csr" "$2.ext"
    }
    sign ca kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
    sign ca kubelet-serving "/CN=$NODE_NAME" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
    sign ca kube-proxy "/CN=system:kube-proxy" "$client"
    sign ca kube-scheduler "/CN=system:kube-scheduler" "$client"
    sign ca coredns "/CN=podgate-e2e-coredns" "$client"
    chmod 644 ./*.crt
  ) || die "generating the node's certificates failed"
}

# ------------------------------------------------------------- configs ----

write_node_configs() {
  local n; n=$(node_dir)
  mkdir -p "$n/cni/net.d" "$n/containerd/certs.d/_default" "$n/kubelet" "$n/pod-logs"
  # Every registry resolves to a closed loopback port: a pull can never leave
  # this machine. Images come from `ctr images import` only.
  printf 'server = "https://127.0.0.1:9"\n\n[host."https://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
    >"$n/containerd/certs.d/_default/hosts.toml"
  cat >"$n/containerd/config.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$n/containerd/containerd.sock"
[ttrpc]
  address = "$n/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: runc may not lower oom_score_adj below ours.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$n/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$n/containerd/certs.d"
EOF
  # Bridge + host-local on a /16 that exists only on this bridge; no default
  # route (pods reach this host and the Service range, nothing else).
  cat >"$n/cni/net.d/10-podgate.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "podgate-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$n/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  printf 'nameserver %s\nsearch cluster.local\noptions ndots:5\n' "$NODE_IP" >"$n/resolv.conf"
  cat >"$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host has cgroup v1, which kubelet >= 1.35 refuses unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP_ROOT
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $n/resolv.conf
podLogsDir: $n/pod-logs
containerRuntimeEndpoint: unix://$n/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/certs/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $STATE/certs/kubelet-serving.crt
tlsPrivateKeyFile: $STATE/certs/kubelet-serving.key
failSwapOn: false
serializeImagePulls: false
# Imported images are all there is: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi"}
nodeStatusUpdateFrequency: 4s
# A changed ConfigMap reaches the pods' volumes at the next pod sync: every
# 10 s instead of every minute, so a config reload is seen within a test.
syncFrequency: 10s
EOF
  cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
clientConnection: {kubeconfig: $n/kube-proxy.kubeconfig}
# Leave the host's conntrack sysctls and route_localnet alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
  cat >"$n/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $n/coredns.kubeconfig podgate-e2e
        pods insecure
        ttl 5
    }
    cache 5
}
EOF
  write_kubeconfig "$n/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
  write_kubeconfig "$n/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  write_kubeconfig "$n/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
  write_kubeconfig "$n/coredns.kubeconfig" coredns podgate-e2e-coredns
}

# What CoreDNS's kubernetes plugin reads, for its own user.
COREDNS_RBAC='apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "podgate-e2e:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "podgate-e2e:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "podgate-e2e:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: podgate-e2e-coredns}'

# ------------------------------------------------------------- runtime ----

# in_node NAME ARGS...: start a component inside the node's mount namespace.
in_node() {
  local name=$1; shift
  start_cmd "$name" nsenter --mount="/proc/$(pid_of node-namespace)/ns/mnt" -- "$@"
}

ctr_node() { # ctr ARGS...: the node's containerd, in the node's mount namespace
  nsenter --mount="/proc/$(pid_of node-namespace)/ns/mnt" -- \
    "$(command -v ctr)" --address "$(node_dir)/containerd/containerd.sock" -n k8s.io "$@"
}

# node_import TAR NAME: load an image archive into the node's containerd, and
# name it by digest too (NAME's repository @sha256:...), as a pull from a
# registry would, so manifests can pin it; prints that digest.
node_import() {
  local tar=$1 name=$2 digest
  ctr_node images import "$tar" >/dev/null || die "importing $tar into the node failed"
  digest=$(ctr_node images ls | awk -v n="$name" '$1 == n { print $3 }')
  [[ $digest == sha256:* ]] || die "$name is not in the node after importing $tar"
  ctr_node images tag --force "$name" "${name%:*}@$digest" >/dev/null
  printf '%s\n' "$digest"
}

node_namespace_mounted() { # asked anew each time: the pid is read when it is there
  local pid
  pid=$(pid_of node-namespace) || return 1
  grep -q podgate-e2e-varlog "/proc/$pid/mounts"
}

node_ready() {
  [[ "$("$(bin_path kubectl)" --kubeconfig "$STATE/kubeconfig" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

dns_ok() { # the kubernetes Service resolves through CoreDNS
  python3 - "$NODE_IP" <<'EOF'
import socket, struct, sys
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
for label in "kubernetes.default.svc.cluster.local".split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, (sys.argv[1], 53))
data = s.recv(512)
sys.exit(0 if (data[3] & 0x0F) == 0 and struct.unpack(">H", data[6:8])[0] > 0 else 1)
EOF
}

NODE_UP_DONE=0
node_abort() {
  [[ $NODE_UP_DONE == 1 ]] && return 0
  log "node did not come up; taking it down again (logs stay in $STATE/logs)"
  node_down
}

cmd_node() {
  pid_of kube-apiserver >/dev/null || die "the control plane is not up; run '$0 up' first"
  if pid_of kubelet >/dev/null; then
    log "node already up"
    return 0
  fi
  local missing
  missing=$(node_packages_missing)
  [[ -z $missing ]] || die "missing Debian packages for the node: $(echo $missing) (apt-get install them)"
  cmd_build >/dev/null
  # One node per host: the bridge, the guard chain and the cgroup are
  # host-wide, and taking this one down must never touch another's.
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || [[ -d /sys/fs/cgroup/cpu/$NODE_CGROUP_ROOT ]] ||
    iptables -w -t mangle -n -L "$GUARD_CHAIN" >/dev/null 2>&1; then
    die "a node is already up on this host (bridge $NODE_BRIDGE); take it down with its own PODGATE_E2E_DIR first"
  fi
  local t0; t0=$(now)
  # shellcheck source=/dev/null
  source "$STATE/ports.env"
  local n; n=$(node_dir)
  mkdir -p "$n"
  trap node_abort EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  host_snapshot "$n/host-before"
  read -r KUBELET_PORT KUBELET_HEALTHZ_PORT PROXY_HEALTHZ_PORT PROXY_METRICS_PORT SCHED_PORT <<<"$(free_ports 5)"
  printf 'KUBELET_PORT=%s\nKUBELET_HEALTHZ_PORT=%s\nPROXY_HEALTHZ_PORT=%s\nPROXY_METRICS_PORT=%s\nSCHED_PORT=%s\n' \
    "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$PROXY_HEALTHZ_PORT" "$PROXY_METRICS_PORT" "$SCHED_PORT" >"$n/ports.env"
  node_certs
  write_node_configs
  net_up
  "$(bin_path kubectl)" --kubeconfig "$STATE/kubeconfig" apply -f - <<<"$COREDNS_RBAC" >/dev/null ||
    die "could not create CoreDNS's RBAC"

  # The node's mount namespace: a private /run, /var/lib and /var/log, so the
  # netns bind mounts, shim sockets, CNI cache and pod logs never touch the
  # host's, and every mount made inside goes when its last process exits.
  start_cmd node-namespace unshare --mount --propagation private -- sh -c \
    'mount -t tmpfs -o mode=755 podgate-e2e-run /run && mount -t tmpfs -o mode=755 podgate-e2e-varlib /var/lib &&
     mount -t tmpfs -o mode=755 podgate-e2e-varlog /var/log && exec sleep infinity'
  wait_for node-namespace "its mounts" node_namespace_mounted

  start_cmd api-relay socat "TCP-LISTEN:$API_PORT,bind=$NODE_IP,reuseaddr,fork" "TCP:127.0.0.1:$API_PORT"
  start_cmd coredns "$(bin_path coredns)" -conf "$n/Corefile"
  wait_for coredns "kubernetes.default.svc.cluster.local" dns_ok
  in_node containerd containerd --config "$n/containerd/config.toml"
  wait_for containerd "its socket" test -S "$n/containerd/containerd.sock"
  local pause; pause=$(image_pause)
  node_import "$pause" "$PAUSE_IMAGE" >/dev/null
  start kube-scheduler \
    --kubeconfig="$n/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$n/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$n/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false
  # The kubelet puts every pod under this cgroup, in each v1 hierarchy, and
  # wants it there first; node_cgroups_remove takes it away.
  local h
  for h in /sys/fs/cgroup/*/; do
    if [[ -f $h/cgroup.procs && $h != */unified/ ]]; then mkdir -p "$h$NODE_CGROUP_ROOT"; fi
  done
  in_node kubelet "$(bin_path kubelet)" \
    --config="$n/kubelet/config.yaml" \
    --kubeconfig="$n/kubelet.kubeconfig" \
    --root-dir="$n/kubelet/root" \
    --node-ip="$NODE_IP" \
    --hostname-override="$NODE_NAME"
  in_node kube-proxy "$(bin_path kube-proxy)" --config="$n/kube-proxy.yaml"
  wait_for kube-scheduler /healthz curl_ok "https://127.0.0.1:$SCHED_PORT/healthz" --insecure
  wait_for kubelet "node $NODE_NAME Ready" node_ready
  wait_for kube-proxy /healthz curl -sf "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  NODE_UP_DONE=1
  trap - EXIT INT TERM
  log "node $NODE_NAME up in $(elapsed "$t0")s"
}

# Every pid under the node's cgroups (its containers), in every hierarchy.
node_cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
    if [[ -d $d ]]; then find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -u
}

node_cgroups_remove() {
  local d i
  for ((i = 0; i < 50; i++)); do
    [[ -z "$(node_cgroup_pids)" ]] && break
    node_cgroup_pids | xargs -r kill -KILL 2>/dev/null || true
    sleep 0.1
  done
  for d in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
    if [[ -d $d ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  for d in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
    if [[ -d $d ]]; then log "warning: cgroup $d could not be removed"; fi
  done
  return 0
}

node_shim_pids() { # containerd shims of this node (they carry its socket path)
  local pid
  for pid in $(pgrep -f containerd-shim 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(node_dir)/"; then printf '%s\n' "$pid"; fi
  done
}

node_down() {
  local n; n=$(node_dir)
  [[ -d $n ]] || return 0
  local t0; t0=$(now)
  local i name
  for ((i = ${#NODE_COMPONENTS[@]} - 1; i >= 0; i--)); do
    name=${NODE_COMPONENTS[i]}
    [[ $name == node-namespace ]] && continue
    stop_one "$name"
  done
  # Containers outlive containerd; their cgroups name them all.
  node_cgroups_remove
  local shims; shims=$(node_shim_pids)
  if [[ -n $shims ]]; then kill -KILL $shims 2>/dev/null || true; fi
  stop_one node-namespace
  net_down
  if [[ -f $n/host-before/sysctls ]]; then restore_sysctls "$n/host-before/sysctls"; fi
  if [[ -d $n/host-before ]]; then
    host_snapshot "$n/host-after"
    local diffs; diffs=$(host_compare "$n/host-before" "$n/host-after")
    if [[ -n $diffs ]]; then
      log "the host differs from before the node started:"
      printf '%s\n' "$diffs" | sed 's/^/    /' >&2
      HOST_DIRTY=1
    fi
  fi
  local mounted; mounted=$(findmnt -rn -o TARGET | grep -F -- "$n/" || true)
  [[ -z $mounted ]] || die "mounts left under $n: $mounted"
  rm -rf --one-file-system "$n"
  log "node down in $(elapsed "$t0")s"
}
