# shellcheck shell=bash
#
# A real Kubernetes control plane for the end-to-end stack: etcd +
# kube-apiserver + kube-controller-manager, built from source through the Go
# module proxy, plus kubectl and helm. The API server listens on the stack's
# host address (lib/net.sh), which the host and the pods reach, and is the
# endpoint of the `kubernetes` Service; the node (lib/node.sh) runs the pods.
#
# Sourced by e2e/stack. Public functions:
#   k8s_build   build (or reuse) the binaries in the cache, keyed by version
#   k8s_up      start etcd, kube-apiserver and kube-controller-manager
#   k8s_down    stop them and wipe etcd so the next k8s_up starts fresh
#   k8s_env     print `export KUBECONFIG=...` and `export PATH=...` lines
#   k8s_status  print what is running and whether the API server is ready
#
# Versions come from the wrapper modules in e2e/k8s-build/ (go.mod is the
# single source of truth for Kubernetes and etcd) and K8S_HELM_VERSION below.

_K8S_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_BUILD_SRC=${K8S_BUILD_SRC:-$(cd "$_K8S_LIB_DIR/../k8s-build" && pwd)}

K8S_CACHE_DIR=${MILLPOND_CACHE_DIR:-$HOME/.cache/millpond}
K8S_STATE_DIR=${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}/k8s

K8S_HELM_VERSION=${K8S_HELM_VERSION:-v3.22.0}

# Loopback ports, all away from the usual defaults so a stray local cluster
# or etcd does not collide with ours.
K8S_ETCD_CLIENT_PORT=${K8S_ETCD_CLIENT_PORT:-12379}
K8S_ETCD_PEER_PORT=${K8S_ETCD_PEER_PORT:-12380}
K8S_APISERVER_PORT=${K8S_APISERVER_PORT:-16443}
K8S_KCM_PORT=${K8S_KCM_PORT:-16257}

# shellcheck source=net.sh
declare -F net_up >/dev/null || source "$_K8S_LIB_DIR/net.sh"
K8S_SERVICE_CIDR=$NET_SERVICE_CIDR
K8S_SERVICE_IP=${NET_SERVICE_CIDR%.*/*}.1   # first address of the range
K8S_NODE_NAME=${MILLPOND_NODE_NAME:-millpond-node}

# Seconds to wait for the control plane to become ready / to stop.
K8S_UP_TIMEOUT=${K8S_UP_TIMEOUT:-120}
K8S_STOP_TIMEOUT=${K8S_STOP_TIMEOUT:-15}

# Go builds yield the CPU to anything else running on the machine.
K8S_BUILD_NICE=${K8S_BUILD_NICE:-19}

# --- small helpers ----------------------------------------------------------

# The dispatcher sources common.sh first; do it here too so this file also
# works on its own (e.g. from a test script).
declare -F log >/dev/null || source "$_K8S_LIB_DIR/common.sh"

_k8s_log() { log "k8s: $*"; }
_k8s_die() { die "k8s: $*"; }

# Version of a required module, read from a wrapper go.mod.
_k8s_mod_version() { # <go.mod> <module>
    awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit }
                   ($1 == m && $2 ~ /^v/ && !/=>/) { print $2; exit }' "$1"
}

k8s_version() { _k8s_mod_version "$K8S_BUILD_SRC/kubernetes/go.mod" k8s.io/kubernetes; }
k8s_etcd_version() { _k8s_mod_version "$K8S_BUILD_SRC/etcd/go.mod" go.etcd.io/etcd/server/v3; }

_k8s_bin_dir() { echo "$K8S_CACHE_DIR/k8s-$(k8s_version)/bin"; }
_k8s_etcd_bin_dir() { echo "$K8S_CACHE_DIR/etcd-$(k8s_etcd_version)/bin"; }
_k8s_helm_bin_dir() { echo "$K8S_CACHE_DIR/helm-$K8S_HELM_VERSION/bin"; }

_k8s_kubectl() {
    "$(_k8s_bin_dir)/kubectl" --kubeconfig "$K8S_STATE_DIR/admin.kubeconfig" "$@"
}

# --- build ------------------------------------------------------------------

# Runs a command with stderr filtered of the "go: downloading ..." chatter a
# cold module cache produces (hundreds of lines); keeps its exit status.
_k8s_quiet_go() {
    local rc
    { "$@" 2>&1 1>&3 | { grep -v '^go: downloading ' >&2 || true; }; } 3>&1
    rc=${PIPESTATUS[0]}
    return "$rc"
}

_k8s_go_build() { # <module dir> <out dir> <ldflags> <tags> <pkg>
    local moddir=$1 out=$2 ldflags=$3 tags=$4 pkg=$5 name start
    name=$(basename "$pkg")
    [[ $name == v3 ]] && name=etcd
    start=$SECONDS
    _k8s_log "building $name ($pkg)"
    (
        cd "$moddir" &&
            CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
                _k8s_quiet_go nice -n "$K8S_BUILD_NICE" go build -trimpath -tags "$tags" \
                -ldflags "$ldflags" -o "$out/$name" "$pkg"
    ) || { _k8s_die "go build $pkg failed"; return 1; }
    _k8s_log "built $name in $((SECONDS - start))s"
}

# Moves bin.tmp into place and writes the marker that makes later builds skip.
_k8s_finish_build() { # <versioned cache dir>
    local dir=${1:?}
    rm -rf "${dir:?}/bin" && mv "$dir/bin.tmp" "$dir/bin" && date -u +%FT%TZ >"$dir/.complete"
}

# The Kubernetes commands the stack runs: the control plane, the node, kubectl.
_K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

_k8s_build_kubernetes() {
    local ver minor dir tmp ldflags kv pkg missing=()
    ver=$(k8s_version)
    [[ -n $ver ]] || { _k8s_die "no k8s.io/kubernetes version in $K8S_BUILD_SRC/kubernetes/go.mod"; return 1; }
    dir=$K8S_CACHE_DIR/k8s-$ver
    # A cache from before a command was added builds just the new ones.
    for pkg in "${_K8S_COMMANDS[@]}"; do
        [[ -f $dir/.complete && -x $dir/bin/$pkg ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    minor=${ver#v1.}; minor=${minor%%.*}
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        for kv in gitVersion=$ver gitMajor=1 gitMinor=$minor gitTreeState=clean; do
            ldflags+=" -X $pkg.$kv"
        done
    done
    tmp=$dir/bin.tmp
    rm -rf "$tmp" && mkdir -p "$tmp" || return 1
    [[ -f $dir/.complete ]] && cp -a "$dir/bin/." "$tmp/"
    for pkg in "${missing[@]}"; do
        _k8s_go_build "$K8S_BUILD_SRC/kubernetes" "$tmp" "$ldflags" \
            "selinux,notest,grpcnotrace" "k8s.io/kubernetes/cmd/$pkg" || return 1
    done
    _k8s_finish_build "$dir"
}

_k8s_build_etcd() {
    local ver dir tmp
    ver=$(k8s_etcd_version)
    [[ -n $ver ]] || { _k8s_die "no etcd version in $K8S_BUILD_SRC/etcd/go.mod"; return 1; }
    dir=$K8S_CACHE_DIR/etcd-$ver
    [[ -f $dir/.complete ]] && return 0
    tmp=$dir/bin.tmp
    rm -rf "$tmp" && mkdir -p "$tmp" || return 1
    _k8s_go_build "$K8S_BUILD_SRC/etcd" "$tmp" "-s -w" "" go.etcd.io/etcd/server/v3 || return 1
    _k8s_finish_build "$dir"
}

_k8s_build_helm() {
    local ver=$K8S_HELM_VERSION dir tmp gomod cg major minor ldflags start
    dir=$K8S_CACHE_DIR/helm-$ver
    [[ -f $dir/.complete ]] && return 0
    # Helm's Makefile stamps its own version and the Kubernetes version it
    # assumes when no cluster is asked (`helm template`, lint); do the same,
    # deriving the latter from the client-go it is built with.
    gomod=$(cd / && go mod download -json "helm.sh/helm/v3@$ver" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [[ -f $gomod ]] || _k8s_die "cannot download helm.sh/helm/v3@$ver"
    cg=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
    [[ $cg == v0.* ]] || _k8s_die "no k8s.io/client-go version in $gomod"
    major=1; minor=${cg#v0.}; minor=${minor%%.*}
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$ver"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for kv in lint/rules chartutil; do
        ldflags+=" -X helm.sh/helm/v3/pkg/$kv.k8sVersionMajor=$major"
        ldflags+=" -X helm.sh/helm/v3/pkg/$kv.k8sVersionMinor=$minor"
    done
    tmp=$dir/bin.tmp
    rm -rf "$tmp" && mkdir -p "$tmp" || return 1
    start=$SECONDS
    _k8s_log "building helm $ver"
    (cd / && CGO_ENABLED=0 GOBIN=$tmp _k8s_quiet_go nice -n "$K8S_BUILD_NICE" \
        go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$ver") ||
        { _k8s_die "go install helm $ver failed"; return 1; }
    _k8s_log "built helm in $((SECONDS - start))s"
    _k8s_finish_build "$dir"
}

_k8s_build_all() {
    have go || _k8s_die "go is not installed (the Debian package golang-go may be too old; the wrapper modules need the Go named in e2e/k8s-build/*/go.mod)"
    local start=$SECONDS
    mkdir -p "$K8S_CACHE_DIR"
    _k8s_build_etcd || return 1
    _k8s_build_kubernetes || return 1
    _k8s_build_helm || return 1
    if (( SECONDS - start > 1 )); then
        _k8s_log "binaries ready in $((SECONDS - start))s: kubernetes $(k8s_version), etcd $(k8s_etcd_version), helm $K8S_HELM_VERSION"
    fi
}

k8s_build() { with_lock k8s-build _k8s_build_all; }

# --- PKI and kubeconfigs ------------------------------------------------------

# Everything under pki/ survives k8s_down, so kubeconfigs handed out stay
# valid across restarts; delete the directory to rotate.
_K8S_PKI_FILES=(ca.crt ca.key apiserver.crt apiserver.key
    controller-manager.crt controller-manager.key
    kube-scheduler.crt kube-proxy.crt kubelet.crt apiserver-kubelet-client.crt
    front-proxy-ca.crt front-proxy-client.crt front-proxy-client.key
    sa.key sa.pub tokens.csv)

# Runs in the pki directory.
_k8s_pki_generate() {
    pki_ca ca millpond-e2e-ca || return 1
    pki_sign ca apiserver "/CN=kube-apiserver" serverAuth \
        "IP:127.0.0.1,IP:::1,IP:$MILLPOND_HOST_IP,IP:$K8S_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" || return 1
    # An identity the bootstrap RBAC policy already binds to the
    # system:kube-controller-manager role.
    pki_sign ca controller-manager "/CN=system:kube-controller-manager" clientAuth || return 1
    # The node: identities the bootstrap RBAC policy binds (system:node:*,
    # system:kube-scheduler, system:kube-proxy), the kubelet's serving
    # certificate, and the API server's client certificate for the kubelet
    # (logs, exec).
    pki_sign ca kube-scheduler "/CN=system:kube-scheduler" clientAuth || return 1
    pki_sign ca kube-proxy "/CN=system:kube-proxy" clientAuth || return 1
    pki_sign ca kubelet "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" serverAuth,clientAuth \
        "IP:$MILLPOND_HOST_IP,DNS:$K8S_NODE_NAME" || return 1
    pki_sign ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth || return 1

    # Front proxy (request-header) CA: the API server publishes it in
    # kube-system/extension-apiserver-authentication, which the controller
    # manager's delegated authentication (and any aggregated API server)
    # reads; without it they log errors forever.
    pki_ca front-proxy-ca millpond-e2e-front-proxy-ca || return 1
    pki_sign front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth || return 1
    rm -f front-proxy-ca.key

    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key || return 1
    openssl pkey -in sa.key -pubout -out sa.pub || return 1

    printf '%s,admin,admin-uid,"system:masters"\n' "$(openssl rand -hex 24)" >tokens.csv || return 1
    chmod 600 ./*.key tokens.csv
}

_k8s_pki() {
    local d=$K8S_STATE_DIR/pki f stale=
    for f in "${_K8S_PKI_FILES[@]}"; do
        [[ -s $d/$f ]] || stale=$f
    done
    # Addresses changed (another host address or Service range): new ones.
    openssl x509 -in "$d/apiserver.crt" -noout -ext subjectAltName 2>/dev/null |
        grep -q "IP Address:$MILLPOND_HOST_IP, IP Address:$K8S_SERVICE_IP," || stale=apiserver.crt
    [[ -z $stale ]] && return 0
    ensure_cmd openssl openssl
    _k8s_log "generating CAs, serving/client certificates and service-account keys"
    rm -rf "$d" && mkdir -p "$d" && chmod 700 "$d" || return 1
    (cd "$d" && _k8s_pki_generate 2>openssl.log) ||
        _k8s_die "certificate generation failed, see $d/openssl.log"
}

_k8s_write_kubeconfig() { # <file> <user stanza lines>
    local ca
    ca=$(base64 -w0 <"$K8S_STATE_DIR/pki/ca.crt")
    cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: millpond
  cluster:
    server: https://$MILLPOND_HOST_IP:$K8S_APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: $2
  user:
$3
contexts:
- name: millpond
  context:
    cluster: millpond
    user: $2
    namespace: default
current-context: millpond
EOF
    chmod 600 "$1.tmp" && mv "$1.tmp" "$1"
}

_k8s_kubeconfigs() {
    local pki=$K8S_STATE_DIR/pki token
    token=$(cut -d, -f1 "$pki/tokens.csv")
    _k8s_write_kubeconfig "$K8S_STATE_DIR/admin.kubeconfig" admin "    token: $token"
    _k8s_write_kubeconfig "$K8S_STATE_DIR/controller-manager.kubeconfig" \
        system:kube-controller-manager \
        "    client-certificate: $pki/controller-manager.crt
    client-key: $pki/controller-manager.key"
}

# --- processes --------------------------------------------------------------

# Daemons of the control plane (see start_daemon).
_k8s_running() { daemon_running "$K8S_STATE_DIR" "$1"; }
_k8s_start() { start_daemon "$K8S_STATE_DIR" "$@"; }

# Before starting anything: every port a stopped component needs is free.
_k8s_preflight() {
    if ! _k8s_running etcd; then
        _k8s_port_free "$K8S_ETCD_CLIENT_PORT" etcd
        _k8s_port_free "$K8S_ETCD_PEER_PORT" "etcd peer"
    fi
    _k8s_running kube-apiserver || _k8s_port_free "$K8S_APISERVER_PORT" kube-apiserver "$MILLPOND_HOST_IP"
    _k8s_running kube-controller-manager || _k8s_port_free "$K8S_KCM_PORT" kube-controller-manager
}

_k8s_port_free() { # <port> <name> [address]
    tcp_open "${3:-127.0.0.1}" "$1" || return 0
    _k8s_die "port ${3:-127.0.0.1}:$1 (for $2) is taken by another process; set K8S_*_PORT or stop it"
}

# Plain HTTP on loopback; --unsafe-no-fsync because the data is throw-away
# (k8s_down wipes it) and fsync dominates etcd latency on a busy disk.
_k8s_start_etcd() {
    _k8s_running etcd && return 0
    local peer=http://127.0.0.1:$K8S_ETCD_PEER_PORT client=http://127.0.0.1:$K8S_ETCD_CLIENT_PORT
    mkdir -p "$K8S_STATE_DIR/etcd" && chmod 700 "$K8S_STATE_DIR/etcd"
    _k8s_start etcd "$(_k8s_etcd_bin_dir)/etcd" \
        --name=millpond \
        --data-dir="$K8S_STATE_DIR/etcd" \
        --listen-client-urls="$client" --advertise-client-urls="$client" \
        --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
        --initial-cluster="millpond=$peer" --initial-cluster-state=new \
        --initial-cluster-token=millpond-e2e \
        --unsafe-no-fsync=true \
        --log-level=warn
}

# Notes on the flags:
#  * it listens and advertises on the stack's host address, so the
#    `kubernetes` Service leads pods (in-cluster configuration) to it;
#  * --kubelet-*: `kubectl logs` / `exec` reach the node's kubelet at its
#    InternalIP, verify its certificate and present a client certificate;
#  * the --requestheader-* / --proxy-client-* set makes the API server publish
#    the front-proxy CA that delegated authentication reads (see _k8s_pki).
#  * --cert-dir is never written to (the serving certificate is given) but
#    points under the state dir in case a flag change makes it self-sign.
_k8s_start_apiserver() {
    _k8s_running kube-apiserver && return 0
    local pki=$K8S_STATE_DIR/pki
    _k8s_start kube-apiserver "$(_k8s_bin_dir)/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
        --bind-address="$MILLPOND_HOST_IP" \
        --advertise-address="$MILLPOND_HOST_IP" \
        --secure-port="$K8S_APISERVER_PORT" \
        --kubelet-preferred-address-types=InternalIP \
        --kubelet-certificate-authority="$pki/ca.crt" \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        --tls-cert-file="$pki/apiserver.crt" \
        --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --token-auth-file="$pki/tokens.csv" \
        --authorization-mode=Node,RBAC \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range="$K8S_SERVICE_CIDR" \
        --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota,NodeRestriction \
        --allow-privileged=true \
        --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
        --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User \
        --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$pki/front-proxy-client.crt" \
        --proxy-client-key-file="$pki/front-proxy-client.key" \
        --profiling=false \
        --cert-dir="$K8S_STATE_DIR/apiserver-certs"
}

# Notes on the flags:
#  * --flex-volume-plugin-dir: by default it creates
#    /usr/libexec/kubernetes/kubelet-plugins/volume/exec/ on the host.
#  * --controllers='*' leaves bootstrapsigner and tokencleaner off (they are
#    opt-in); the cloud and node-ipam controllers skip themselves.
#  * the serving certificate is self-signed in memory (--cert-dir unused).
_k8s_start_controller_manager() {
    _k8s_running kube-controller-manager && return 0
    local pki=$K8S_STATE_DIR/pki kc=$K8S_STATE_DIR/controller-manager.kubeconfig
    _k8s_start kube-controller-manager "$(_k8s_bin_dir)/kube-controller-manager" \
        --kubeconfig="$kc" \
        --authentication-kubeconfig="$kc" \
        --authorization-kubeconfig="$kc" \
        --bind-address=127.0.0.1 \
        --secure-port="$K8S_KCM_PORT" \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$pki/sa.key" \
        --root-ca-file="$pki/ca.crt" \
        --cluster-signing-cert-file="$pki/ca.crt" \
        --cluster-signing-key-file="$pki/ca.key" \
        --cluster-name=millpond \
        --flex-volume-plugin-dir="$K8S_STATE_DIR/flexvolume" \
        --service-cluster-ip-range="$K8S_SERVICE_CIDR" \
        --controllers='*' \
        --leader-elect=false \
        --profiling=false
}

_k8s_etcd_ready() { tcp_open 127.0.0.1 "$K8S_ETCD_CLIENT_PORT"; }

_k8s_apiserver_ready() {
    [[ $(_k8s_kubectl get --raw /readyz 2>/dev/null) == ok ]]
}

_k8s_default_sa_ready() {
    _k8s_kubectl -n default get serviceaccount default >/dev/null 2>&1
}

# _k8s_wait NAME DESCRIPTION PROBE : see wait_daemon.
_k8s_wait() { wait_daemon "$K8S_STATE_DIR" "$1" "$2" "$3" "$K8S_UP_TIMEOUT"; }

_k8s_up() {
    local t0
    t0=$(now_ms)
    k8s_build || return 1
    net_up
    mkdir -p "$K8S_STATE_DIR"
    _k8s_pki || return 1
    _k8s_kubeconfigs
    _k8s_preflight

    _k8s_start_etcd
    _k8s_wait etcd "etcd to accept connections" _k8s_etcd_ready
    _k8s_start_apiserver
    _k8s_wait kube-apiserver "kube-apiserver /readyz" _k8s_apiserver_ready
    _k8s_start_controller_manager
    _k8s_wait kube-controller-manager "the default service account" _k8s_default_sa_ready
    _k8s_log "control plane ready in $(elapsed_s "$t0") at https://$MILLPOND_HOST_IP:$K8S_APISERVER_PORT (KUBECONFIG=$K8S_STATE_DIR/admin.kubeconfig)"
}

_k8s_down() {
    local name
    for name in kube-controller-manager kube-apiserver etcd; do
        stop_daemon "$K8S_STATE_DIR" "$name" "$K8S_STOP_TIMEOUT"
    done
    # Fresh cluster next time; certificates and logs stay.
    rm -rf "$K8S_STATE_DIR/etcd"
    _k8s_log "control plane stopped, etcd data wiped"
}

# --- public -------------------------------------------------------------------

k8s_up() { with_lock k8s _k8s_up; }
k8s_down() { with_lock k8s _k8s_down; }

# Prints export lines for what exists: PATH once the binaries are built (so
# kubectl and helm work even before `up`), KUBECONFIG while the API server
# runs. Messages go to stderr; stdout is for eval.
k8s_env() {
    if [[ -f $K8S_CACHE_DIR/k8s-$(k8s_version)/.complete ]]; then
        # shellcheck disable=SC2016
        printf 'export PATH=%q:%q:%q:"$PATH"\n' "$(_k8s_bin_dir)" "$(_k8s_etcd_bin_dir)" "$(_k8s_helm_bin_dir)"
    else
        log "k8s: binaries not built yet; no PATH for kubectl/helm (run: e2e/stack up k8s)"
    fi
    if _k8s_running kube-apiserver; then
        printf 'export KUBECONFIG=%q\n' "$K8S_STATE_DIR/admin.kubeconfig"
    else
        log "k8s: control plane is not running; no KUBECONFIG (run: e2e/stack up k8s)"
    fi
}

k8s_status() {
    local name pid
    for name in etcd kube-apiserver kube-controller-manager; do
        pid=$(daemon_pid "$K8S_STATE_DIR" "$name")
        if _k8s_running "$name"; then
            echo "k8s: $name running, pid $pid, log $K8S_STATE_DIR/logs/$name.log"
        else
            echo "k8s: $name stopped"
        fi
    done
    if _k8s_running kube-apiserver && _k8s_apiserver_ready; then
        echo "k8s: API ready at https://$MILLPOND_HOST_IP:$K8S_APISERVER_PORT, KUBECONFIG=$K8S_STATE_DIR/admin.kubeconfig"
    elif _k8s_running kube-apiserver; then
        echo "k8s: API server alive but NOT ready (starting, or failing: see its log)"
    fi
    local what dir
    for what in "kubernetes $(k8s_version):k8s-$(k8s_version)" "etcd $(k8s_etcd_version):etcd-$(k8s_etcd_version)" "helm $K8S_HELM_VERSION:helm-$K8S_HELM_VERSION"; do
        dir=$K8S_CACHE_DIR/${what#*:}
        if [[ -f $dir/.complete ]]; then
            echo "k8s: ${what%%:*} built in $dir/bin"
        else
            echo "k8s: ${what%%:*} not built yet ($dir/bin)"
        fi
    done
}
