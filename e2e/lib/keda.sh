# shellcheck shell=bash
#
# KEDA on the local stack, for the side-by-side benchmark (bench/keda.sh):
# its operator (scalers, the gRPC metrics service) and its metrics adapter
# (the `external.metrics.k8s.io` API server), built from the release named in
# e2e/keda-build/go.mod through the Go module proxy, cached in
# $MILLPOND_CACHE_DIR/keda-<version>, and run as host processes next to the
# control plane. The HPA that scales on their metric is kube-controller-
# manager's own.
#
#   keda_build  build the operator and the adapter once (about 4 minutes cold)
#   keda_up     install KEDA's CRDs, start both, register the APIService
#   keda_down   unregister the APIService, stop both
#
# Not part of `e2e/stack up` (no test needs KEDA): `e2e/stack up keda`
# starts it on a running control plane; `e2e/stack down` stops it too.

_KEDA_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEDA_BUILD_SRC=${KEDA_BUILD_SRC:-$(cd "$_KEDA_LIB_DIR/../keda-build" && pwd)}
KEDA_CACHE_DIR=${MILLPOND_CACHE_DIR:-$HOME/.cache/millpond}
KEDA_STATE_DIR=${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}/keda
# The adapter serves on the host address (the aggregator dials it there);
# the operator's metrics service, metrics and probes stay on loopback.
KEDA_ADAPTER_PORT=${KEDA_ADAPTER_PORT:-16445}
KEDA_GRPC_PORT=${KEDA_GRPC_PORT:-19666}
KEDA_OPERATOR_METRICS_PORT=${KEDA_OPERATOR_METRICS_PORT:-18086}
KEDA_OPERATOR_PROBE_PORT=${KEDA_OPERATOR_PROBE_PORT:-18087}
KEDA_ADAPTER_METRICS_PORT=${KEDA_ADAPTER_METRICS_PORT:-18088}
KEDA_NAMESPACE=keda
KEDA_APISERVICE=v1beta1.external.metrics.k8s.io

declare -F log >/dev/null || source "$_KEDA_LIB_DIR/common.sh"
declare -F k8s_version >/dev/null || source "$_KEDA_LIB_DIR/k8s.sh"

_keda_log() { log "keda: $*"; }
_keda_die() { die "keda: $*"; }

keda_version() { _k8s_mod_version "$KEDA_BUILD_SRC/go.mod" github.com/kedacore/keda/v2; }
_keda_dir() { echo "$KEDA_CACHE_DIR/keda-$(keda_version)"; }

# The module directory of the release (its CRDs live there).
_keda_module_dir() {
    (cd "$KEDA_BUILD_SRC" && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
}

_keda_build() {
    local dir tmp moddir ver pkg
    ver=$(keda_version)
    [[ -n $ver ]] || _keda_die "no KEDA version in $KEDA_BUILD_SRC/go.mod"
    dir=$(_keda_dir)
    [[ -f $dir/.complete ]] && return 0
    have go || _keda_die "go is not installed"
    tmp=$dir/bin.tmp
    rm -rf "$tmp" "$dir/crds" && mkdir -p "$tmp" || return 1
    # KEDA's Makefile stamps its version the same way.
    for pkg in adapter operator; do
        _k8s_go_build "$KEDA_BUILD_SRC" "$tmp" \
            "-s -w -X github.com/kedacore/keda/v2/version.Version=$ver -X github.com/kedacore/keda/v2/version.GitCommit=release" \
            "" "github.com/kedacore/keda/v2/cmd/$pkg" || return 1
    done
    moddir=$(_keda_module_dir) || _keda_die "cannot find the module of KEDA $ver"
    cp -r "$moddir/config/crd/bases" "$dir/crds" && chmod -R u+w "$dir/crds"
    _k8s_finish_build "$dir"
}

keda_build() { with_lock keda-build _keda_build; }

# One certificate for both ends of KEDA's own mTLS (the adapter dials the
# operator's gRPC service; each checks the other against ca.crt) and for
# the adapter's serving (the aggregator checks it against the APIService's
# caBundle, by the Service's DNS name).
_keda_pki() {
    local d=$KEDA_STATE_DIR/certs
    [[ -f $d/tls.crt && -f $d/ca.crt ]] && return 0
    mkdir -p "$d"
    (
        cd "$d" &&
            pki_ca ca "millpond-e2e keda CA" >/dev/null 2>&1 &&
            pki_sign ca tls "/CN=keda" serverAuth,clientAuth \
                "DNS:keda-metrics-apiserver.$KEDA_NAMESPACE.svc,DNS:keda-operator.$KEDA_NAMESPACE.svc,DNS:localhost,IP:127.0.0.1,IP:$MILLPOND_HOST_IP" \
                >/dev/null 2>&1
    ) || _keda_die "cannot make KEDA's certificates in $d"
}

_keda_running() { daemon_running "$KEDA_STATE_DIR" "$1"; }

_keda_operator_ready() { curl -fsS "http://127.0.0.1:$KEDA_OPERATOR_PROBE_PORT/readyz" >/dev/null 2>&1; }
_keda_apiservice_available() {
    [[ $(_k8s_kubectl get apiservice "$KEDA_APISERVICE" \
        -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

# The APIService, and the ExternalName Service the aggregator dials (the
# adapter runs on the host, not in a pod).
_keda_register() {
    local ca
    ca=$(base64 -w0 <"$KEDA_STATE_DIR/certs/ca.crt")
    _k8s_kubectl apply --server-side --force-conflicts -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $KEDA_NAMESPACE}
spec:
  type: ExternalName
  externalName: $MILLPOND_HOST_IP
  ports: [{name: https, port: $KEDA_ADAPTER_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $KEDA_APISERVICE}
spec:
  service: {name: keda-metrics-apiserver, namespace: $KEDA_NAMESPACE, port: $KEDA_ADAPTER_PORT}
  group: external.metrics.k8s.io
  version: v1beta1
  caBundle: $ca
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
}

_keda_up() {
    local dir kc=$K8S_STATE_DIR/admin.kubeconfig certs=$KEDA_STATE_DIR/certs
    _k8s_running kube-apiserver || _keda_die "the control plane is not running (e2e/stack up k8s first)"
    keda_build || return 1
    dir=$(_keda_dir)
    mkdir -p "$KEDA_STATE_DIR"
    _keda_pki
    _k8s_kubectl apply --server-side --force-conflicts -f "$dir/crds" >/dev/null ||
        _keda_die "cannot install KEDA's CRDs"
    _k8s_kubectl create namespace "$KEDA_NAMESPACE" --dry-run=client -o yaml |
        _k8s_kubectl apply -f - >/dev/null
    if ! _keda_running keda-operator; then
        # Cluster-wide (WATCH_NAMESPACE empty), as KEDA's chart installs it.
        KUBECONFIG=$kc WATCH_NAMESPACE="" POD_NAMESPACE=$KEDA_NAMESPACE \
            KEDA_CLUSTER_OBJECT_NAMESPACE=$KEDA_NAMESPACE \
            start_daemon "$KEDA_STATE_DIR" keda-operator "$dir/bin/operator" \
            --leader-elect=false --zap-log-level=info --zap-encoder=console \
            --cert-dir="$certs" --enable-cert-rotation=false \
            --metrics-bind-address="127.0.0.1:$KEDA_OPERATOR_METRICS_PORT" \
            --health-probe-bind-address="127.0.0.1:$KEDA_OPERATOR_PROBE_PORT" \
            --metrics-service-bind-address="127.0.0.1:$KEDA_GRPC_PORT" \
            --enable-webhook-patching=false --ca-dir="$certs"
    fi
    wait_daemon "$KEDA_STATE_DIR" keda-operator "KEDA's operator /readyz" _keda_operator_ready 90
    if ! _keda_running keda-adapter; then
        KUBECONFIG=$kc WATCH_NAMESPACE="" POD_NAMESPACE=$KEDA_NAMESPACE \
            KEDA_CLUSTER_OBJECT_NAMESPACE=$KEDA_NAMESPACE \
            start_daemon "$KEDA_STATE_DIR" keda-adapter "$dir/bin/adapter" \
            --lister-kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
            --bind-address="$MILLPOND_HOST_IP" --secure-port="$KEDA_ADAPTER_PORT" \
            --cert-dir="$certs" --tls-cert-file="$certs/tls.crt" --tls-private-key-file="$certs/tls.key" \
            --metrics-service-address="127.0.0.1:$KEDA_GRPC_PORT" \
            --port="$KEDA_ADAPTER_METRICS_PORT" --v=0
    fi
    _keda_register || _keda_die "cannot register the APIService $KEDA_APISERVICE"
    wait_daemon "$KEDA_STATE_DIR" keda-adapter "the APIService $KEDA_APISERVICE to be Available" \
        _keda_apiservice_available 90
    _keda_log "KEDA $(keda_version) ready: operator and adapter (logs in $KEDA_STATE_DIR/logs)"
}

_keda_down() {
    local name
    # An APIService left without its server breaks discovery for every
    # client of the API server: it goes first.
    if _k8s_running kube-apiserver; then
        _k8s_kubectl delete apiservice "$KEDA_APISERVICE" --ignore-not-found --timeout=30s >/dev/null 2>&1
        _k8s_kubectl delete namespace "$KEDA_NAMESPACE" --ignore-not-found --wait=false >/dev/null 2>&1
    fi
    for name in keda-adapter keda-operator; do
        stop_daemon "$KEDA_STATE_DIR" "$name" 15
    done
    return 0
}

keda_up() { with_lock keda _keda_up; }
keda_down() { with_lock keda _keda_down; }

keda_status() {
    local name
    for name in keda-operator keda-adapter; do
        if _keda_running "$name"; then
            echo "keda: $name running, pid $(daemon_pid "$KEDA_STATE_DIR" "$name"), log $KEDA_STATE_DIR/logs/$name.log"
        else
            echo "keda: $name stopped"
        fi
    done
}
