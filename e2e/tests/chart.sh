#!/usr/bin/env bash
# e2e/tests/chart.sh: the millpond-operator Helm chart, linted, rendered and
# checked against the real Kubernetes API server of the local stack.
#
#   e2e/stack up k8s && e2e/tests/chart.sh
#
# Starts nothing: it uses the running control plane and the helm and kubectl
# of `e2e/stack env`. It works in a namespace of its own, installs the chart
# there with 0 operator replicas (so no operator process runs; the RBAC is
# real) and removes the release and the namespace at the end. The CRD stays
# installed, as helm leaves it.
#
# Proves: `helm lint --strict` passes with the default values and with the
# optional parts on; the rendered objects have the properties the chart
# promises (2 operator replicas, probes, non-root read-only container,
# downward-API env, no wildcard in any RBAC rule, ServiceMonitors and the
# Grafana dashboard only on request); the API server accepts every rendered
# object (server-side dry-run); the installed ServiceAccount has exactly the
# permissions it needs (`kubectl auth can-i`); with watchNamespaces the
# operator gets the same rules as Roles in the watched namespaces only (a
# second release, in two more namespaces of its own); the chart's CRD is
# the generated one.
#
# Prints one line per check and `N passed, M failed` last; exits non-zero
# when a check failed.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2

CHART=charts/millpond-operator
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack

NS="millpond-chart-test-$$"
RELEASE="mp-chart-$$"
SA="system:serviceaccount:$NS:$RELEASE-millpond-operator"
# The namespace-scoped release: it watches WATCHED only; OTHER is a
# namespace it must not touch.
SCOPED="$RELEASE-scoped"
SCOPED_SA="system:serviceaccount:$NS:$SCOPED-millpond-operator"
WATCHED="$NS-watched"
OTHER="$NS-other"
TMP="$(mktemp -d)"

cleanup() {
    helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    helm uninstall "$SCOPED" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$NS" "$WATCHED" "$OTHER" --wait=false >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

# render FILE HELM-TEMPLATE-ARGS... : renders the chart into FILE.
render() {
    local file=$1
    shift
    helm template "$RELEASE" "$CHART" -n "$NS" "$@" >"$file" 2>"$file.err"
}

# query FILE JSONPATH : evaluates JSONPATH over each object of FILE (parsed
# by kubectl without a server) and prints the results one after the other.
query() {
    kubectl create --dry-run=client -o jsonpath="$2" -f "$1" 2>&1
}

# docs FILE PATTERN : the YAML documents of FILE that contain PATTERN.
docs() {
    awk -v pat="$2" 'BEGIN { RS = "\n---\n" } index($0, pat) { printf "---\n%s\n", $0 }' "$1"
}

# kinds FILE : the kinds of the rendered objects, sorted, one line.
kinds() {
    grep -h '^kind: ' "$1" | sed 's/^kind: //' | sort | tr '\n' ' ' | sed 's/ $//'
}

# ------------------------------------------------------------- the CRD --

if cmp -s crds/millpondconsumer.yaml "$CHART/crds/millpondconsumer.yaml"; then
    pass "the chart's CRD is crds/millpondconsumer.yaml"
else
    fail "the chart's CRD is crds/millpondconsumer.yaml" \
        "copy it: cp crds/millpondconsumer.yaml $CHART/crds/"
fi

# ------------------------------------------------------------ helm lint --

if out=$(helm lint --strict "$CHART" 2>&1) && [[ $out != *"[WARNING]"* && $out != *"[ERROR]"* ]]; then
    pass "helm lint --strict is clean with the default values"
else
    fail "helm lint --strict is clean with the default values" "$out"
fi

if out=$(helm lint --strict "$CHART" --set serviceMonitor.enabled=true --set grafanaDashboard.enabled=true 2>&1) &&
    [[ $out != *"[WARNING]"* && $out != *"[ERROR]"* ]]; then
    pass "helm lint --strict is clean with ServiceMonitors and the dashboard"
else
    fail "helm lint --strict is clean with ServiceMonitors and the dashboard" "$out"
fi

# ------------------------------------------------- the default objects --

DEFAULT="$TMP/default.yaml"
if render "$DEFAULT"; then
    pass "helm template renders the default values"
else
    fail "helm template renders the default values" "$(cat "$DEFAULT.err")"
fi

check "the default objects" \
    "ClusterRole ClusterRole ClusterRole ClusterRoleBinding Deployment PodDisruptionBudget Role RoleBinding Service ServiceAccount" \
    "$(kinds "$DEFAULT")"

DEPLOY="$TMP/deployment.yaml"
docs "$DEFAULT" "kind: Deployment" >"$DEPLOY"
C="{.spec.template.spec.containers[0]"

check "the operator runs 2 replicas" "2" "$(query "$DEPLOY" "{.spec.replicas}")"

check "probes: /healthz and /readyz on the metrics port 8080" \
    "/healthz metrics /readyz metrics metrics=8080" \
    "$(query "$DEPLOY" "$C.livenessProbe.httpGet.path} $C.livenessProbe.httpGet.port} $C.readinessProbe.httpGet.path} $C.readinessProbe.httpGet.port} $C.ports[0].name}=$C.ports[0].containerPort}")"

check "the container runs as non-root with a read-only root and no capabilities" \
    "true 65532 true false ALL RuntimeDefault" \
    "$(query "$DEPLOY" "$C.securityContext.runAsNonRoot} $C.securityContext.runAsUser} $C.securityContext.readOnlyRootFilesystem} $C.securityContext.allowPrivilegeEscalation} $C.securityContext.capabilities.drop[*]} $C.securityContext.seccompProfile.type}")"

check "the pod runs as non-root" \
    "true RuntimeDefault" \
    "$(query "$DEPLOY" "{.spec.template.spec.securityContext.runAsNonRoot} {.spec.template.spec.securityContext.seccompProfile.type}")"

check "POD_NAME, POD_NAMESPACE and POD_IP come from the downward API" \
    "metadata.name metadata.namespace status.podIP" \
    "$(query "$DEPLOY" "$C.env[?(@.name==\"POD_NAME\")].valueFrom.fieldRef.fieldPath} $C.env[?(@.name==\"POD_NAMESPACE\")].valueFrom.fieldRef.fieldPath} $C.env[?(@.name==\"POD_IP\")].valueFrom.fieldRef.fieldPath}")"

# shellcheck disable=SC2016 # the literal $(POD_IP) reference is expected
check "METRICS_ADDR binds the pod IP" \
    '$(POD_IP):8080' \
    "$(query "$DEPLOY" "$C.env[?(@.name==\"METRICS_ADDR\")].value}")"

check "the consumer image and leader election reach the operator" \
    "docker.io/millpond/consumer:0.1.0 true $RELEASE-millpond-operator" \
    "$(query "$DEPLOY" "$C.env[?(@.name==\"CONSUMER_IMAGE\")].value} $C.env[?(@.name==\"LEADER_ELECTION\")].value} $C.env[?(@.name==\"LEADER_ELECTION_LEASE\")].value}")"

check "the container has resources" \
    "50m 64Mi 256Mi" \
    "$(query "$DEPLOY" "$C.resources.requests.cpu} $C.resources.requests.memory} $C.resources.limits.memory}")"

docs "$DEFAULT" "name: $RELEASE-millpond-operator-metrics" >"$TMP/service.yaml"
check "the metrics Service selects the operator pods on port 8080" \
    "metrics 8080 metrics" \
    "$(query "$TMP/service.yaml" '{.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].targetPort}')"

# ----------------------------------------------------------------- RBAC --

docs "$DEFAULT" "rules:" >"$TMP/roles.yaml"
RULES=$(query "$TMP/roles.yaml" '{.kind}/{.metadata.name}: groups {.rules[*].apiGroups[*]} resources {.rules[*].resources[*]} verbs {.rules[*].verbs[*]};')
if [[ -n $RULES && $RULES != *'*'* ]]; then
    pass "no RBAC rule uses a wildcard"
else
    fail "no RBAC rule uses a wildcard" "$RULES"
fi
if grep -nE "[\"']\\*[\"']" "$DEFAULT" >"$TMP/stars"; then
    fail "no quoted * anywhere in the rendered chart" "$(cat "$TMP/stars")"
else
    pass "no quoted * anywhere in the rendered chart"
fi

check "the operator may not list or watch Secrets" \
    '["get","create","patch","update"]' \
    "$(query "$TMP/roles.yaml" '{.rules[?(@.resources[0]=="secrets")].verbs}')"
check "leases are granted in a Role in the release namespace, not cluster-wide" \
    "Role $NS" \
    "$(query "$(docs "$DEFAULT" '"leases"' >"$TMP/lease.yaml"; echo "$TMP/lease.yaml")" '{.kind} {.metadata.namespace}')"

# ---------------------------------------------------- optional objects --

ALL="$TMP/all.yaml"
if render "$ALL" --set serviceMonitor.enabled=true --set grafanaDashboard.enabled=true; then
    pass "helm template renders with ServiceMonitors and the dashboard"
else
    fail "helm template renders with ServiceMonitors and the dashboard" "$(cat "$ALL.err")"
fi
check "two ServiceMonitors (operator, consumers) and the dashboard ConfigMap are added" \
    "ClusterRole ClusterRole ClusterRole ClusterRoleBinding ConfigMap Deployment PodDisruptionBudget Role RoleBinding Service ServiceAccount ServiceMonitor ServiceMonitor" \
    "$(kinds "$ALL")"
check_contains "the consumers' ServiceMonitor selects their metrics Services in every namespace" \
    "$(sed -n '/name: '"$RELEASE"'-millpond-operator-consumers/,$p' "$ALL")" \
    "app.kubernetes.io/name: millpond-consumer" "any: true" "port: metrics" "- millpond.io/consumer"

DASH="$TMP/dash.yaml"
render "$DASH" --set grafanaDashboard.enabled=true -s templates/grafana-dashboard.yaml
check "the dashboard ConfigMap carries the label grafana_dashboard=1" \
    "1" "$(query "$DASH" '{.metadata.labels.grafana_dashboard}')"
query "$DASH" '{.data.millpond\.json}' >"$TMP/dash.json"
if diff -q <(cat "$CHART/dashboards/millpond.json") <(cat "$TMP/dash.json"; echo) >/dev/null; then
    pass "the dashboard ConfigMap holds dashboards/millpond.json"
else
    fail "the dashboard ConfigMap holds dashboards/millpond.json" \
        "$(diff <(cat "$CHART/dashboards/millpond.json") <(cat "$TMP/dash.json"; echo) | head -5)"
fi
check_contains "the dashboard charts consumer and operator metrics" \
    "$(cat "$CHART/dashboards/millpond.json")" \
    millpond_records_total millpond_partition_lag millpond_buffer_fullness millpond_in_flight_batches \
    millpond_flush_duration_seconds_bucket millpond_limits_generation millpond_limit_flush_bytes \
    millpond_limit_max_in_flight millpond_errors_total millpond_operator_reconcile_duration_seconds_bucket \
    millpond_operator_reconcile_errors_total 'sum by (direction) (increase(millpond_operator_decisions_total' \
    millpond_operator_desired_replicas

SINGLE="$TMP/single.yaml"
render "$SINGLE" --set replicaCount=1 --set leaderElection.enabled=false --set rbac.aggregateToDefaultRoles=false
check "one replica without leader election: no PodDisruptionBudget, no Lease Role" \
    "ClusterRole ClusterRoleBinding Deployment Service ServiceAccount" \
    "$(kinds "$SINGLE")"

# ------------------------------------------------ namespace-scoped --

NSCOPED="$TMP/scoped.yaml"
if render "$NSCOPED" --set "watchNamespaces={$WATCHED,$OTHER}"; then
    pass "helm template renders with watchNamespaces"
else
    fail "helm template renders with watchNamespaces" "$(cat "$NSCOPED.err")"
fi
check "with watchNamespaces: a Role and RoleBinding per watched namespace instead of the ClusterRole (the two ClusterRoles left are the users' aggregated ones)" \
    "ClusterRole ClusterRole Deployment PodDisruptionBudget Role Role Role RoleBinding RoleBinding RoleBinding Service ServiceAccount" \
    "$(kinds "$NSCOPED")"
# The operator's own Role (ClusterRole), not the leader-election one nor
# the users' aggregated ones.
OPERATOR_NAME=$'\n  name: '"$RELEASE"$'-millpond-operator\n'
docs "$NSCOPED" $'kind: Role\nmetadata:'"$OPERATOR_NAME" >"$TMP/scoped-roles.yaml"
check "the operator's Roles are in the watched namespaces" \
    "Role/$WATCHED Role/$OTHER " \
    "$(query "$TMP/scoped-roles.yaml" '{.kind}/{.metadata.namespace} ')"
docs "$DEFAULT" $'kind: ClusterRole\nmetadata:'"$OPERATOR_NAME" >"$TMP/cluster-role.yaml"
docs "$TMP/scoped-roles.yaml" "namespace: $WATCHED" >"$TMP/watched-role.yaml"
check "a watched namespace's Role has the ClusterRole's rules, every one naming resources and verbs" \
    "$(query "$TMP/cluster-role.yaml" '{.rules}')" "$(query "$TMP/watched-role.yaml" '{.rules}')"
check "a watched namespace's Role may get Secrets, not list or watch them" \
    '["get","create","patch","update"]' \
    "$(query "$TMP/watched-role.yaml" '{.rules[?(@.resources[0]=="secrets")].verbs}')"
RULES=$(query "$TMP/scoped-roles.yaml" '{.rules[*].apiGroups[*]} {.rules[*].resources[*]} {.rules[*].verbs[*]};')
if [[ -n $RULES && $RULES != *'*'* ]]; then
    pass "no rule of the namespaced Roles uses a wildcard"
else
    fail "no rule of the namespaced Roles uses a wildcard" "$RULES"
fi
check "the operator is told the namespaces (WATCH_NAMESPACES)" \
    "$WATCHED,$OTHER" \
    "$(docs "$NSCOPED" "kind: Deployment" >"$TMP/scoped-deploy.yaml"; query "$TMP/scoped-deploy.yaml" "$C.env[?(@.name==\"WATCH_NAMESPACES\")].value}")"
check "without watchNamespaces WATCH_NAMESPACES is empty (every namespace)" \
    "" "$(query "$DEPLOY" "$C.env[?(@.name==\"WATCH_NAMESPACES\")].value}")"
render "$TMP/no-cluster.yaml" --set "watchNamespaces={$WATCHED}" --set rbac.aggregateToDefaultRoles=false
check "with watchNamespaces and no aggregated roles the chart has nothing cluster-scoped" \
    "Deployment PodDisruptionBudget Role Role RoleBinding RoleBinding Service ServiceAccount" \
    "$(kinds "$TMP/no-cluster.yaml")"
render "$TMP/scoped-monitors.yaml" --set "watchNamespaces={$WATCHED}" --set serviceMonitor.enabled=true
check_contains "the consumers' ServiceMonitor then selects the watched namespaces only" \
    "$(sed -n '/name: '"$RELEASE"'-millpond-operator-consumers/,$p' "$TMP/scoped-monitors.yaml")" \
    "matchNames:" "- $WATCHED"

# ------------------------------------------------- the real API server --

kubectl create namespace "$NS" >/dev/null

if out=$(render "$TMP/crds.yaml" --include-crds --set grafanaDashboard.enabled=true &&
    kubectl apply --dry-run=server -n "$NS" -f "$TMP/crds.yaml" 2>&1); then
    pass "the API server accepts every rendered object (server-side dry-run, CRD included)"
else
    fail "the API server accepts every rendered object (server-side dry-run, CRD included)" "$out"
fi

if out=$(helm install "$RELEASE" "$CHART" -n "$NS" --set replicaCount=0 --wait --timeout 120s 2>&1); then
    pass "helm install succeeds (0 operator replicas)"
else
    fail "helm install succeeds (0 operator replicas)" "$out"
fi

# can VERB RESOURCE NAMESPACE [EXTRA...] : prints yes or no for the
# operator's ServiceAccount.
can() {
    local verb=$1 resource=$2 ns=$3
    shift 3
    kubectl auth can-i "$verb" "$resource" -n "$ns" --as "$SA" "$@" 2>/dev/null
}

allowed=(
    "get millpondconsumers.millpond.io pond"
    "list millpondconsumers.millpond.io pond"
    "watch millpondconsumers.millpond.io pond"
    "patch millpondconsumers.millpond.io pond"
    "patch millpondconsumers.millpond.io pond --subresource=status"
    "update millpondconsumers.millpond.io pond --subresource=scale"
    "update millpondconsumers.millpond.io pond --subresource=finalizers"
    "create deployments.apps pond"
    "patch deployments.apps pond"
    "delete deployments.apps pond"
    "create configmaps pond"
    "create services pond"
    "create poddisruptionbudgets.policy pond"
    "create networkpolicies.networking.k8s.io pond"
    "watch networkpolicies.networking.k8s.io pond"
    "create secrets pond"
    "get secrets pond"
    "list pods pond"
    "watch pods pond"
    "create events pond"
    "create events.events.k8s.io pond"
    "get leases.coordination.k8s.io $NS"
    "create leases.coordination.k8s.io $NS"
    "update leases.coordination.k8s.io $NS"
)
denied=(
    "list secrets pond"
    "watch secrets pond"
    "delete millpondconsumers.millpond.io pond"
    "create millpondconsumers.millpond.io pond"
    "create pods pond"
    "delete pods pond"
    "create leases.coordination.k8s.io pond"
    "delete leases.coordination.k8s.io $NS"
    "get nodes ''"
    "create clusterroles.rbac.authorization.k8s.io ''"
    "create pods/exec pond"
)
wrong=()
for entry in "${allowed[@]}"; do
    # shellcheck disable=SC2086
    [[ $(eval can $entry) == yes ]] || wrong+=("should be allowed: $entry")
done
for entry in "${denied[@]}"; do
    # shellcheck disable=SC2086
    [[ $(eval can $entry) == no ]] || wrong+=("should be denied: $entry")
done
if ((${#wrong[@]} == 0)); then
    pass "the operator's ServiceAccount can do what it needs and nothing more (${#allowed[@]} allowed, ${#denied[@]} denied)"
else
    fail "the operator's ServiceAccount can do what it needs and nothing more" "${wrong[@]}"
fi

# The namespace-scoped release beside it: Roles in WATCHED only.
kubectl create namespace "$WATCHED" >/dev/null
kubectl create namespace "$OTHER" >/dev/null
if out=$(helm install "$SCOPED" "$CHART" -n "$NS" --set replicaCount=0 --set "watchNamespaces={$WATCHED}" \
    --set rbac.aggregateToDefaultRoles=false --wait --timeout 120s 2>&1); then
    pass "helm install with watchNamespaces succeeds (0 operator replicas)"
else
    fail "helm install with watchNamespaces succeeds (0 operator replicas)" "$out"
fi

# scoped_can VERB RESOURCE NAMESPACE|--all-namespaces [EXTRA...] : yes or
# no for the namespace-scoped release's ServiceAccount.
scoped_can() {
    local verb=$1 resource=$2 where=$3
    shift 3
    if [[ $where == --all-namespaces ]]; then
        kubectl auth can-i "$verb" "$resource" --all-namespaces --as "$SCOPED_SA" "$@" 2>/dev/null
    else
        kubectl auth can-i "$verb" "$resource" -n "$where" --as "$SCOPED_SA" "$@" 2>/dev/null
    fi
}

scoped_allowed=(
    "get secrets $WATCHED"
    "create secrets $WATCHED"
    "list millpondconsumers.millpond.io $WATCHED"
    "watch millpondconsumers.millpond.io $WATCHED"
    "patch millpondconsumers.millpond.io $WATCHED --subresource=status"
    "update millpondconsumers.millpond.io $WATCHED --subresource=finalizers"
    "create deployments.apps $WATCHED"
    "watch deployments.apps $WATCHED"
    "create configmaps $WATCHED"
    "create services $WATCHED"
    "create poddisruptionbudgets.policy $WATCHED"
    "create networkpolicies.networking.k8s.io $WATCHED"
    "list pods $WATCHED"
    "watch pods $WATCHED"
    "create events $WATCHED"
    "update leases.coordination.k8s.io $NS"
)
scoped_denied=(
    "get secrets $OTHER"
    "list millpondconsumers.millpond.io $OTHER"
    "create deployments.apps $OTHER"
    "list pods $OTHER"
    "create events $OTHER"
    "list secrets $WATCHED"
    "watch secrets $WATCHED"
    "delete millpondconsumers.millpond.io $WATCHED"
    "list millpondconsumers.millpond.io --all-namespaces"
    "watch millpondconsumers.millpond.io --all-namespaces"
    "list deployments.apps --all-namespaces"
    "list pods --all-namespaces"
    "get customresourcedefinitions.apiextensions.k8s.io --all-namespaces"
)
wrong=()
for entry in "${scoped_allowed[@]}"; do
    # shellcheck disable=SC2086
    [[ $(scoped_can $entry) == yes ]] || wrong+=("should be allowed: $entry")
done
for entry in "${scoped_denied[@]}"; do
    # shellcheck disable=SC2086
    [[ $(scoped_can $entry) == no ]] || wrong+=("should be denied: $entry")
done
if ((${#wrong[@]} == 0)); then
    pass "with watchNamespaces the ServiceAccount reads Secrets and runs consumers in the watched namespace only, and lists nothing cluster-wide (${#scoped_allowed[@]} allowed, ${#scoped_denied[@]} denied)"
else
    fail "with watchNamespaces the ServiceAccount is limited to the watched namespace" "${wrong[@]}"
fi

# The built-in edit role picks up the aggregated rule (kube-controller-manager
# aggregates within a few seconds).
aggregated=""
for _ in $(seq 1 20); do
    aggregated=$(kubectl get clusterrole edit -o jsonpath='{.rules[?(@.apiGroups[0]=="millpond.io")].resources}' 2>/dev/null)
    [[ $aggregated == *millpondconsumers* ]] && break
    sleep 1
done
check_contains "the built-in edit role lets users manage MillpondConsumers" "$aggregated" \
    '"millpondconsumers"' '"millpondconsumers/scale"'

echo
finish
