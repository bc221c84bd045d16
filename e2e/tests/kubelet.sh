#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e/tests/kubelet.sh: the process kubelet (e2e/kubelet) against the real
# Kubernetes control plane of the local stack.
#
#   e2e/stack up k8s && e2e/tests/kubelet.sh
#
# Starts the kubelet through e2e/lib/kubelet.sh when it is not running
# (building target/release/millpond-kubelet if missing) and stops it again
# at the end if it started it. Works in a namespace of its own, deleted at
# the end.
#
# Proves, with the millpond-testapp program (image millpond/testapp):
#   * a Deployment's pods are bound, run as processes on distinct 127.x pod
#     IPs, pass their readiness probe, and the rollout completes;
#   * scaling to 3 runs 3 processes;
#   * deleting a pod SIGTERMs its process and the ReplicaSet replaces it;
#   * a container's env is resolved like a kubelet's (fieldRef, ConfigMap,
#     Secret, $(VAR) expansion), and broken pods report
#     CreateContainerConfigError / ErrImagePull / CrashLoopBackOff;
#   * pods act with their ServiceAccount's RBAC: 403 without a Role, 200
#     with one;
#   * deleting the Deployment stops every process (garbage collection).
#
# Prints one line per check and `N passed, M failed` last; exits non-zero
# when a check failed.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2

# shellcheck source=../lib/common.sh
source e2e/lib/common.sh
# shellcheck source=../lib/kubelet.sh
source e2e/lib/kubelet.sh

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack

NS="millpond-kubelet-test-$$"
STARTED_KUBELET=0

cleanup() {
    kubectl delete namespace "$NS" --ignore-not-found --timeout=60s >/dev/null 2>&1 || true
    if (( STARTED_KUBELET )); then
        kubelet_down
    fi
}
trap cleanup EXIT

container_log() { # POD [CONTAINER]
    cat "$KUBELET_STATE/logs/${NS}_$1_${2:-app}.log" 2>/dev/null
}

# live_pids : pids of live container processes of this namespace, from the
# kubelet's pid files.
live_pids() {
    local f pid
    for f in "$KUBELET_STATE/pods/${NS}_"*/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cut -d' ' -f1 <"$f")
        pid_alive "$pid" && printf '%s\n' "$pid"
    done
}

count_live() { live_pids | wc -l | tr -d ' '; }

pods_of() { # LABEL-SELECTOR -> "name ip" lines of running pods
    kubectl -n "$NS" get pods -l "$1" \
        -o jsonpath='{range .items[?(@.status.phase=="Running")]}{.metadata.name} {.status.podIP}{"\n"}{end}'
}

# ------------------------------------------------------------------ setup --

if [[ -z $(kubelet_pid) ]]; then
    kubelet_up || { echo "0 passed, 1 failed"; exit 1; }
    STARTED_KUBELET=1
fi
# with_lock (inside kubelet_up) sets its own EXIT trap; put ours back.
trap cleanup EXIT
ensure_cmd curl curl
kubectl create namespace "$NS" >/dev/null

# ------------------------------------------------------------- deployment --

kubectl -n "$NS" create configmap testapp-settings --from-literal=GREETING=hello >/dev/null
kubectl -n "$NS" create secret generic testapp-secret --from-literal=password=s3cret >/dev/null
kubectl -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: testapp
spec:
  replicas: 2
  selector:
    matchLabels: {app: testapp}
  template:
    metadata:
      labels: {app: testapp}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: app
        image: millpond/testapp:latest
        envFrom:
        - configMapRef: {name: testapp-settings}
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: testapp-secret, key: password}}
        - name: LISTEN_ADDR
          value: "$(POD_IP):8080"
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
EOF

if kubectl -n "$NS" rollout status deploy/testapp --timeout=120s >/dev/null 2>&1; then
    pass "deployment with 2 replicas rolls out (readiness probe passes)"
else
    fail "deployment with 2 replicas rolls out (readiness probe passes)" \
        "$(kubectl -n "$NS" get pods -o wide 2>&1)"
fi

kubectl -n "$NS" get pods -o wide
mapfile -t PODS < <(pods_of app=testapp)
ips=$(printf '%s\n' "${PODS[@]}" | awk '{print $2}' | sort -u)
check "2 running pods with 2 distinct pod IPs" 2 "$(grep -c . <<<"$ips")"
bad_ips=$(grep -vE '^127\.' <<<"$ips" || true)
check "pod IPs are loopback addresses (127.x)" "" "$bad_ips"

first_pod=${PODS[0]%% *}
first_ip=${PODS[0]##* }
check "the testapp answers on its pod IP" "ok" \
    "$(curl -s --max-time 3 "http://$first_ip:8080/healthz")"
info=$(curl -s --max-time 3 "http://$first_ip:8080/" 2>/dev/null || true)
check_contains "env from fieldRef and \$(VAR) expansion reach the process" "$info" \
    "\"pod\":\"$first_pod\"" "\"namespace\":\"$NS\"" "\"listen\":\"$first_ip:8080\""
environ=$(tr '\0' '\n' <"/proc/$(cut -d' ' -f1 "$KUBELET_STATE/pods/${NS}_${first_pod}_"*/app.pid)/environ" 2>/dev/null)
check_contains "envFrom ConfigMap, secretKeyRef and a per-pod KUBECONFIG are set" "$environ" \
    "GREETING=hello" "PASSWORD=s3cret" "KUBECONFIG=$KUBELET_STATE/pods/${NS}_${first_pod}_"
check "the admin kubeconfig does not leak into pods" "" \
    "$(grep -F "$MILLPOND_STATE_DIR/k8s/admin.kubeconfig" <<<"$environ" || true)"

# ------------------------------------------------------------------ scale --

kubectl -n "$NS" scale deploy/testapp --replicas=3 >/dev/null
kubectl -n "$NS" rollout status deploy/testapp --timeout=120s >/dev/null 2>&1
poll 30 test "$(count_live)" -eq 3
check "scaled to 3: 3 testapp processes run" 3 "$(count_live)"

# ------------------------------------------------------------- pod delete --

victim=$first_pod
victim_pid=$(cut -d' ' -f1 "$KUBELET_STATE/pods/${NS}_${victim}_"*/app.pid 2>/dev/null)
kubectl -n "$NS" delete pod "$victim" --timeout=60s >/dev/null 2>&1
check_contains "deleting a pod sends SIGTERM to its process" "$(container_log "$victim")" \
    "received SIGTERM"
if pid_alive "$victim_pid"; then
    fail "the deleted pod's process is gone" "pid $victim_pid still alive"
else
    pass "the deleted pod's process is gone"
fi
replaced() {
    local names
    names=$(kubectl -n "$NS" get pods -l app=testapp \
        -o jsonpath='{range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name}{"\n"}{end}')
    [[ $(grep -c . <<<"$names") -eq 3 ]] && ! grep -qx "$victim" <<<"$names"
}
if poll 60 replaced; then
    pass "the ReplicaSet replaces the deleted pod (3 ready again)"
else
    fail "the ReplicaSet replaces the deleted pod (3 ready again)" "$(kubectl -n "$NS" get pods -o wide 2>&1)"
fi

# ---------------------------------------------------------- broken pods --

kubectl -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: missing-config}
spec:
  containers:
  - name: app
    image: millpond/testapp
    env:
    - name: X
      valueFrom: {configMapKeyRef: {name: does-not-exist, key: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: unmapped-image}
spec:
  containers:
  - {name: app, image: "nginx:1.27"}
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: app
    image: millpond/testapp
    command: [sh, -c, "echo crashing; exit 3"]
EOF
waiting_reason() { # POD -> reason of the first container's waiting state
    kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}'
}
reason_is() { [[ $(waiting_reason "$1") == "$2" ]]; }
poll 20 reason_is missing-config CreateContainerConfigError
check "a missing ConfigMap gives CreateContainerConfigError" CreateContainerConfigError \
    "$(waiting_reason missing-config)"
check_contains "its message names the ConfigMap" \
    "$(kubectl -n "$NS" get pod missing-config -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')" \
    'configmap "does-not-exist" not found'
image_pull_failing() { [[ $(waiting_reason unmapped-image) == @(ErrImagePull|ImagePullBackOff) ]]; }
if poll 20 image_pull_failing; then
    pass "an image without a program gives ErrImagePull/ImagePullBackOff"
else
    fail "an image without a program gives ErrImagePull/ImagePullBackOff" "reason: $(waiting_reason unmapped-image)"
fi
crash_looping() {
    [[ $(waiting_reason crasher) == CrashLoopBackOff ]] &&
        (( $(kubectl -n "$NS" get pod crasher -o jsonpath='{.status.containerStatuses[0].restartCount}') >= 1 ))
}
if poll 30 crash_looping; then
    pass "a crashing container restarts with CrashLoopBackOff"
else
    fail "a crashing container restarts with CrashLoopBackOff" \
        "$(kubectl -n "$NS" get pod crasher -o jsonpath='{.status.containerStatuses[0]}')"
fi
check "its last state records exit code 3" 3 \
    "$(kubectl -n "$NS" get pod crasher -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')"
kubectl -n "$NS" delete pod missing-config unmapped-image crasher --timeout=60s >/dev/null 2>&1

# ------------------------------------------------------------------- RBAC --

kubectl -n "$NS" create serviceaccount no-list >/dev/null
kubectl -n "$NS" create serviceaccount lister >/dev/null
kubectl -n "$NS" create role pod-lister --verb=list --resource=pods >/dev/null
kubectl -n "$NS" create rolebinding lister-can-list --role=pod-lister \
    --serviceaccount="$NS:lister" >/dev/null
poll 10 bash -c "kubectl auth can-i list pods -n '$NS' --as='system:serviceaccount:$NS:lister' | grep -qx yes"

k8s_get_pod() { # NAME SERVICE-ACCOUNT
    kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  serviceAccountName: $2
  restartPolicy: Never
  containers:
  - name: app
    image: millpond/testapp
    args: ["--k8s-get", "/api/v1/namespaces/$NS/pods"]
EOF
}
k8s_get_pod rbac-denied no-list
k8s_get_pod rbac-allowed lister
phase_is() { [[ $(kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
poll 60 phase_is rbac-denied Succeeded
poll 60 phase_is rbac-allowed Succeeded
check "a finished pod (restartPolicy Never) reaches phase Succeeded" Succeeded \
    "$(kubectl -n "$NS" get pod rbac-denied -o jsonpath='{.status.phase}')"
check_contains "without a Role the pod's service account gets 403" \
    "$(container_log rbac-denied)" "k8s-get /api/v1/namespaces/$NS/pods: HTTP 403"
check_contains "with a Role granting list pods it gets 200" \
    "$(container_log rbac-allowed)" "k8s-get /api/v1/namespaces/$NS/pods: HTTP 200"

# -------------------------------------------------------- garbage collect --

mapfile -t DEPLOY_PIDS < <(live_pids)
kubectl -n "$NS" delete deploy/testapp >/dev/null
all_stopped() {
    local pid
    for pid in "${DEPLOY_PIDS[@]}"; do
        pid_alive "$pid" && return 1
    done
    [[ $(count_live) -eq 0 ]] &&
        [[ -z $(kubectl -n "$NS" get pods -l app=testapp -o name 2>/dev/null) ]]
}
if poll 90 all_stopped; then
    pass "deleting the Deployment stops all ${#DEPLOY_PIDS[@]} of its processes and removes its pods"
else
    fail "deleting the Deployment stops all ${#DEPLOY_PIDS[@]} of its processes and removes its pods" \
        "live: $(live_pids | tr '\n' ' ')" "$(kubectl -n "$NS" get pods 2>&1)"
fi

finish
