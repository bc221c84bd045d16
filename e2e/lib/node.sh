# shellcheck shell=bash
#
# The node of the local stack: containerd + runc + CNI plugins from Debian's
# packages, and kubelet, kube-scheduler and kube-proxy from the stack's
# Kubernetes build (lib/k8s.sh). Pods run in their own network namespaces
# on the stack's bridge (lib/net.sh) with real cgroup memory limits,
# read-only root file systems and volumes; Services work through
# kube-proxy's iptables rules; `kubectl logs` and `exec` reach the kubelet.
#
# Sourced after lib/common.sh, lib/net.sh and lib/k8s.sh. Public functions:
#   node_up      start containerd, import the images, start the node
#                components, wait until the node is Ready
#   node_down    stop them, then remove every container, mount, network
#                namespace and iptables rule they made
#   node_status  print what runs
#   node_ctr     run `ctr` against the node's containerd
#
# Everything lives under $MILLPOND_STATE_DIR/node: containerd's root and
# state, the kubelet's root dir (pod volumes), pod logs, CNI configuration
# and IP allocations, logs of the components.

_NODE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
declare -F log >/dev/null || source "$_NODE_LIB_DIR/common.sh"
# shellcheck source=images.sh
declare -F images_build >/dev/null || source "$_NODE_LIB_DIR/images.sh"

NODE_NAME=${MILLPOND_NODE_NAME:-millpond-node}
NODE_STATE="$MILLPOND_STATE_DIR/node"
NODE_CONTAINERD_SOCK="$NODE_STATE/containerd/containerd.sock"
NODE_CNI_NETWORK=millpond
# Ports of the node components' own endpoints (health, metrics), on loopback.
NODE_SCHEDULER_PORT=${MILLPOND_SCHEDULER_PORT:-16259}
NODE_PROXY_METRICS_PORT=${MILLPOND_PROXY_METRICS_PORT:-16249}
NODE_PROXY_HEALTH_PORT=${MILLPOND_PROXY_HEALTH_PORT:-16256}
NODE_KUBELET_PORT=10250
NODE_UP_TIMEOUT=${MILLPOND_NODE_UP_TIMEOUT:-120}
# Seconds a node component gets to stop. Stopping the kubelet leaves the
# containers running; node_down removes them afterwards.
NODE_STOP_TIMEOUT=20

_node_log() { log "node: $*"; }

node_ctr() { ctr --address "$NODE_CONTAINERD_SOCK" "$@"; }

# Daemons of the node (see start_daemon).
_node_running() { daemon_running "$NODE_STATE" "$1"; }
_node_start() { start_daemon "$NODE_STATE" "$@"; }
_node_wait() { wait_daemon "$NODE_STATE" "$1" "$2" "$3" "$NODE_UP_TIMEOUT"; }
_node_stop() { stop_daemon "$NODE_STATE" "$1" "$NODE_STOP_TIMEOUT"; }

# --- containerd ---------------------------------------------------------------

_node_containerd_config() {
    cat <<EOF
version = 2
root = "$NODE_STATE/containerd/root"
state = "$NODE_STATE/containerd/state"
# Only the overlayfs snapshotter is used; the others only log errors here.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$NODE_CONTAINERD_SOCK"
[ttrpc]
  address = "$NODE_CONTAINERD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  # Built here (e2e/node/pause.c) and imported, never pulled.
  sandbox_image = "$IMAGE_PAUSE"
  # This machine's root may not lower oom_score_adj (no CAP_SYS_RESOURCE);
  # without this runc fails every sandbox.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_STATE/cni/net.d"
    max_conf_num = 1
EOF
}

# Pods on the stack's bridge, addresses from its range; no masquerading:
# pod traffic never leaves this machine.
_node_cni_config() {
    cat <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$NODE_CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NET_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_STATE/cni/ipam",
        "ranges": [[{"subnet": "$NET_POD_CIDR", "rangeStart": "${NET_POD_CIDR%.*/*}.16", "gateway": "$MILLPOND_HOST_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

_node_containerd_ready() { node_ctr version >/dev/null 2>&1; }

_node_start_containerd() {
    _node_running containerd && return 0
    { have containerd && have runc && [[ -x /usr/lib/cni/bridge ]]; } ||
        apt_install containerd runc containernetworking-plugins
    have conntrack || apt_install conntrack
    mkdir -p "$NODE_STATE/containerd" "$NODE_STATE/cni/net.d" "$NODE_STATE/cni/ipam"
    _node_containerd_config | _node_write "$NODE_STATE/containerd/config.toml" || true
    _node_cni_config | _node_write "$NODE_STATE/cni/net.d/10-$NODE_CNI_NETWORK.conflist" || true
    _node_start containerd containerd --config "$NODE_STATE/containerd/config.toml"
    _node_wait containerd "containerd to answer on $NODE_CONTAINERD_SOCK" _node_containerd_ready
}

# --- kubelet, kube-scheduler, kube-proxy ----------------------------------------

_node_kubelet_config() {
    local pki=$K8S_STATE_DIR/pki
    cat <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $MILLPOND_HOST_IP
port: $NODE_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
# Only the API server (a client certificate of the stack's CA) talks to it.
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$NODE_CONTAINERD_SOCK
# No systemd here; this machine has cgroup v1 controllers (hybrid).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
podLogsDir: $NODE_STATE/pod-logs
volumePluginDir: $NODE_STATE/volume-plugins
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# The images cannot be pulled again: never garbage-collect them, and do not
# evict pods because the shared disk of a development machine is full-ish.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
maxPods: 110
EOF
}

# _node_write FILE < CONTENT : replaces FILE only when CONTENT differs, so a
# second `up` leaves running components alone (kube-proxy exits when its
# configuration file changes); true when it changed.
_node_write() {
    local tmp=$1.new
    cat >"$tmp"
    if cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$1"
}

_node_kubeconfig() { # NAME CN-ROLE: a kubeconfig with NAME.crt/.key of the stack's CA
    _k8s_write_kubeconfig "$NODE_STATE/$1.kubeconfig" "$1" \
        "    client-certificate: $K8S_STATE_DIR/pki/$1.crt
    client-key: $K8S_STATE_DIR/pki/$1.key"
}

_node_proxy_config() {
    cat <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE_STATE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: $MILLPOND_HOST_IP
clusterCIDR: $NET_POD_CIDR
# NodePorts only on the stack's host address, not on every address of the machine.
nodePortAddresses: ["$MILLPOND_HOST_IP/32"]
healthzBindAddress: 127.0.0.1:$NODE_PROXY_HEALTH_PORT
metricsBindAddress: 127.0.0.1:$NODE_PROXY_METRICS_PORT
# Leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

_node_ready() {
    [[ $(_k8s_kubectl get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

_node_scheduler_ready() { curl -fsk "https://127.0.0.1:$NODE_SCHEDULER_PORT/healthz" >/dev/null 2>&1; }
_node_proxy_ready() { curl -fs "http://127.0.0.1:$NODE_PROXY_HEALTH_PORT/healthz" >/dev/null 2>&1; }

_node_start_components() {
    local bin
    bin=$(_k8s_bin_dir)
    mkdir -p "$NODE_STATE/kubelet" "$NODE_STATE/pod-logs" "$NODE_STATE/volume-plugins"
    _node_kubeconfig kubelet
    _node_kubeconfig kube-scheduler
    _node_kubeconfig kube-proxy
    # A changed configuration restarts its component.
    if _node_kubelet_config | _node_write "$NODE_STATE/kubelet.yaml"; then _node_stop kubelet; fi
    if _node_proxy_config | _node_write "$NODE_STATE/kube-proxy.yaml"; then _node_stop kube-proxy; fi

    _node_running kube-scheduler || _node_start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig="$NODE_STATE/kube-scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$NODE_SCHEDULER_PORT" \
        --leader-elect=false --profiling=false
    _node_running kubelet || _node_start kubelet "$bin/kubelet" \
        --config="$NODE_STATE/kubelet.yaml" \
        --kubeconfig="$NODE_STATE/kubelet.kubeconfig" \
        --root-dir="$NODE_STATE/kubelet" \
        --hostname-override="$NODE_NAME" \
        --node-ip="$MILLPOND_HOST_IP" \
        --v=1
    _node_running kube-proxy || _node_start kube-proxy "$bin/kube-proxy" \
        --config="$NODE_STATE/kube-proxy.yaml"
    _node_wait kube-scheduler "kube-scheduler /healthz" _node_scheduler_ready
    _node_wait kube-proxy "kube-proxy /healthz" _node_proxy_ready
    _node_wait kubelet "node $NODE_NAME to be Ready" _node_ready
}

_node_up() {
    local t0
    t0=$(now_ms)
    mkdir -p "$NODE_STATE"
    _node_start_containerd
    images_build
    images_import --address "$NODE_CONTAINERD_SOCK"
    _node_start_components
    _node_log "node $NODE_NAME ready in $(elapsed_s "$t0") (pods on $NET_BRIDGE, $NET_POD_CIDR)"
}

node_up() { with_lock node _node_up; }

# --- down ---------------------------------------------------------------------------

# Every container and pod sandbox of the node: their processes, then the
# shims, then containerd's records.
_node_remove_containers() {
    _node_running containerd || return 0
    local id
    for id in $(node_ctr -n k8s.io tasks ls -q 2>/dev/null); do
        node_ctr -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    done
    sleep 1
    for id in $(node_ctr -n k8s.io tasks ls -q 2>/dev/null); do
        node_ctr -n k8s.io tasks delete -f "$id" >/dev/null 2>&1
    done
    for id in $(node_ctr -n k8s.io containers ls -q 2>/dev/null); do
        node_ctr -n k8s.io containers delete "$id" >/dev/null 2>&1
    done
}

_node_cleanup_host() {
    local m ns
    # Shims outlive containerd by design.
    pkill -KILL -f "containerd-shim-runc-v2 .*-address $NODE_CONTAINERD_SOCK" 2>/dev/null || true
    # Mounts under the state dir (overlay roots, volumes, sandbox shm), deepest first.
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$NODE_STATE/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
    # Network namespaces made by the CRI for the pods.
    for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
        ip netns delete "$ns" 2>/dev/null || true
    done
    # The kubelet's own iptables chains, and the CNI portmap plugin's.
    local table chain
    for table in filter nat mangle; do
        for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
            iptables_drop_chain "$table" "$chain"
        done
    done
    for chain in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
        iptables_drop_chain nat "$chain"
    done
    # The containers' cgroups (cgroupfs driver: /k8s.io/<id> per controller).
    local cg
    for cg in /sys/fs/cgroup/*/k8s.io; do
        [[ -d $cg ]] || continue
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf "$NODE_STATE/cni/ipam" "$NODE_STATE/kubelet" "$NODE_STATE/pod-logs"
}

_node_down() {
    _node_stop kubelet
    _node_stop kube-scheduler
    _node_stop kube-proxy
    if [[ -x $(_k8s_bin_dir)/kube-proxy ]]; then
        "$(_k8s_bin_dir)/kube-proxy" --cleanup >/dev/null 2>&1 || true
    fi
    _node_remove_containers
    _node_stop containerd
    _node_cleanup_host
    _node_log "stopped; containers, mounts, network namespaces and iptables rules removed"
}

node_down() { with_lock node _node_down; }

node_status() {
    local name
    for name in containerd kubelet kube-scheduler kube-proxy; do
        if _node_running "$name"; then
            echo "node: $name running, pid $(daemon_pid "$NODE_STATE" "$name"), log $NODE_STATE/logs/$name.log"
        else
            echo "node: $name stopped"
        fi
    done
    if _node_running kubelet && _node_ready; then
        echo "node: $NODE_NAME Ready"
    fi
}
