# shellcheck shell=bash
# Shared helpers of the e2e test scripts: each check prints `ok` or `FAIL`
# with details, and the script ends with `N passed, M failed`.

PASSED=0
FAILED=0

# require_stack VAR... : loads the stack's environment (`e2e/stack env`) and
# ends the script as one failed check, saying what to start, unless the API
# server answers, helm is on PATH and every named variable is set.
require_stack() {
    eval "$(e2e/stack env 2>/dev/null)"
    local var missing=()
    for var in KUBECONFIG "$@"; do
        [[ -n ${!var:-} ]] || missing+=("$var")
    done
    if ((${#missing[@]})) || ! kubectl version >/dev/null 2>&1 || ! command -v helm >/dev/null; then
        echo "$(basename "$0"): the stack is not up (${missing[*]:-no API server or helm}); run: e2e/stack up" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
}

pass() {
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$1"
}

# fail NAME DETAIL...
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    shift
    local line
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/      /'
    done
}

# check NAME EXPECTED ACTUAL
check() {
    if [[ $2 == "$3" ]]; then
        pass "$1"
    else
        fail "$1" "expected: $2" "actual:   $3"
    fi
}

# check_contains NAME TEXT FRAGMENT...
check_contains() {
    local name=$1 text=$2 fragment
    shift 2
    for fragment in "$@"; do
        if [[ $text != *"$fragment"* ]]; then
            fail "$name" "missing: $fragment" "in:" "$text"
            return
        fi
    done
    pass "$name"
}

# poll TIMEOUT_S CMD... : true once CMD succeeds (quietly) within TIMEOUT_S.
poll() {
    local deadline=$(( SECONDS + $1 ))
    shift
    until "$@" >/dev/null 2>&1; do
        (( SECONDS >= deadline )) && return 1
        sleep 0.5
    done
}

# install_operator NS RELEASE INTERVAL_SECONDS [HELM-ARGS...] : `kubectl
# apply` the CRD, creates NS and `helm install`s the chart there as a user
# would (with HELM-ARGS, e.g. --set ...), the operator deciding every
# INTERVAL_SECONDS; a failed install ends the script.
install_operator() {
    local ns=$1 release=$2 interval=$3 out
    shift 3
    kubectl apply -f crds/ >/dev/null
    kubectl create namespace "$ns" >/dev/null
    if out=$(helm install "$release" charts/millpond-operator -n "$ns" \
        --set-json "extraEnv=[{\"name\":\"INTERVAL_SECONDS\",\"value\":\"$interval\"}]" \
        "$@" --wait --timeout 120s 2>&1); then
        pass "helm install of the chart: both operator replicas ready (deciding every $interval s)"
    else
        fail "helm install of the chart" "$out"
        finish
        exit 1
    fi
}

# operator_leader NS RELEASE : the operator pod holding the leader lease.
operator_leader() {
    kubectl get lease -n "$1" "$2-millpond-operator" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

# host_volume NS CLAIM DIR : a PersistentVolumeClaim CLAIM in NS bound to a
# hostPath PersistentVolume on DIR (created, writable by the pods' 65532),
# so a test reads back on the host what pods wrote. The volume is named
# `<NS>-<CLAIM>`; deleting the namespace leaves it: delete_host_volume.
host_volume() {
    local ns=$1 claim=$2 dir=$3
    mkdir -p "$dir" && chmod 777 "$dir"
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: $ns-$claim}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: $ns, name: $claim}
  hostPath: {path: $dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $claim, namespace: $ns}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: $ns-$claim
  resources: {requests: {storage: 10Gi}}
EOF
}

# delete_host_volume NS CLAIM DIR : the PersistentVolume and the directory.
delete_host_volume() {
    kubectl delete pv "$1-$2" --wait=false >/dev/null 2>&1
    rm -rf "$3"
}

# container_pid CONTAINER_ID : the host pid of a container's main process on
# the stack's node (CONTAINER_ID as in a pod's status, `containerd://<id>`).
container_pid() {
    local sock=${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}/node/containerd/containerd.sock
    ctr --address "$sock" -n k8s.io tasks ls 2>/dev/null | awk -v id="${1#containerd://}" '$1 == id { print $2 }'
}

# memory_cgroup PID : the directory of the process' memory cgroup (v1: the
# node's cgroupfs driver on this machine's hybrid hierarchy), whose
# memory.max_usage_in_bytes, memory.limit_in_bytes and memory.stat a test
# reads.
memory_cgroup() {
    local path
    path=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$1/cgroup")
    [[ -n $path && -d /sys/fs/cgroup/memory$path ]] || {
        echo "no cgroup v1 memory controller for pid $1" >&2
        return 1
    }
    echo "/sys/fs/cgroup/memory$path"
}

# finish: prints the summary line and fails when any check failed.
finish() {
    echo "$PASSED passed, $FAILED failed"
    (( FAILED == 0 ))
}
