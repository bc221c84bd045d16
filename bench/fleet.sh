#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# bench/fleet.sh [COUNT]: COUNT (default 1000) MillpondConsumers on one
# operator, on the real stack. A benchmark, not a test (e2e/test does not
# run it); bounded: the measuring tool stops after BENCH_SECONDS (default
# 900; a whole run of 1000 takes about 8 minutes on 2 cores), it gives
# up waiting for other operators to leave the stack after
# BENCH_WAIT_SECONDS (default 600), and everything it created is removed
# at the end (its namespaces, the helm release, the topic).
#
#   e2e/stack up && bench/fleet.sh 1000
#
# `kubectl apply` the CRD → `helm install` the chart as a user does (its
# defaults: 2 operator replicas, leader election; INTERVAL_SECONDS=15) →
# one topic of 8 partitions with a few records → COUNT MillpondConsumers,
# each with its own group on that topic, paused at 0 replicas (no pods),
# created by concurrent server-side applies. `millpond-fleet-bench` then
# measures one interval without consumers (the background), the warm-up
# until every consumer was observed, BENCH_SETTLE_SECONDS (default 300, the
# consumers' scale-down window, in which their decision records still grow)
# of settling, and BENCH_INTERVALS (default 5) steady intervals, and prints
# a Markdown report: operator memory, reconcile duration, status freshness,
# API and Kafka requests per interval.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

# shellcheck source=../e2e/tests/lib.sh
source e2e/tests/lib.sh
require_stack KAFKA_BOOTSTRAP_SERVERS

COUNT=${1:-1000}
SECONDS_MAX=${BENCH_SECONDS:-900}
INTERVALS=${BENCH_INTERVALS:-5}
SETTLE=${BENCH_SETTLE_SECONDS:-300}
INTERVAL=15
NS="millpond-bench-fleet-$$"
OPERATOR_NS="millpond-bench-fleet-operator-$$"
RELEASE="mp"
TOPIC="bench-fleet-$$"

# shellcheck disable=SC2317  # runs on the EXIT trap
cleanup() {
    helm uninstall "$RELEASE" -n "$OPERATOR_NS" --wait --timeout 60s >/dev/null 2>&1
    # Garbage collection of what the operator created for each consumer
    # (a Deployment, ReplicaSet, ConfigMap, Service, PodDisruptionBudget and
    # Secret) goes on in the background if it takes longer.
    kubectl delete namespace "$NS" "$OPERATOR_NS" --ignore-not-found --timeout=180s >/dev/null 2>&1 ||
        echo "fleet: namespaces $NS, $OPERATOR_NS still terminating" >&2
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
}
trap cleanup EXIT

cargo build --release --quiet -p millpond-bench -p millpond-e2e --bin millpond-fleet-bench --bin millpond-loadgen || exit 1

# Alone on the stack: another operator would reconcile these consumers too
# (and this one its consumers). Waits up to BENCH_WAIT_SECONDS (default 600)
# until no other release of the chart, operator pod or MillpondConsumer has
# been seen for 30 s (a test suite's operator may come back between runs).
others() {
    helm list -A -o json 2>/dev/null | jq -r '.[] | select(.chart | startswith("millpond-operator-")) | "release \(.namespace)/\(.name)"'
    kubectl get pods -A -l app.kubernetes.io/name=millpond-operator -o name 2>/dev/null
    kubectl get mpc -A -o name 2>/dev/null
}
waited=0 alone=0
while ((alone < 30)); do
    seen=$(others)
    if [[ -n $seen ]]; then
        alone=0
        if ((waited >= ${BENCH_WAIT_SECONDS:-600})); then
            echo "fleet: other Millpond operators or consumers are on the stack; not measuring: $(tr '\n' ' ' <<<"$seen")" >&2
            exit 1
        fi
        ((waited == 0)) && echo "fleet: waiting for other Millpond operators and consumers to go: $(tr '\n' ' ' <<<"$seen")" >&2
    else
        alone=$((alone + 5))
    fi
    sleep 5
    waited=$((waited + 5))
done

target/release/millpond-loadgen --topic "$TOPIC" --create-partitions 8 --records 8000 --size 200 >/dev/null || exit 1
kubectl apply -f crds/ >/dev/null || exit 1
kubectl create namespace "$OPERATOR_NS" >/dev/null || exit 1
kubectl create namespace "$NS" >/dev/null || exit 1
if ! out=$(helm install "$RELEASE" charts/millpond-operator -n "$OPERATOR_NS" \
    --set-json "extraEnv=[{\"name\":\"INTERVAL_SECONDS\",\"value\":\"$INTERVAL\"}]" \
    --wait --timeout 120s 2>&1); then
    echo "fleet: helm install failed: $out" >&2
    exit 1
fi
# shellcheck disable=SC2317  # run by poll
has_leader() { [[ -n $(operator_leader "$OPERATOR_NS" "$RELEASE") ]]; }
poll 60 has_leader || echo "fleet: no operator holds the leader lease yet" >&2
image=$(kubectl get deploy -n "$OPERATOR_NS" -o jsonpath='{.items[0].spec.template.spec.containers[0].image}')
replicas=$(kubectl get deploy -n "$OPERATOR_NS" -o jsonpath='{.items[0].spec.replicas}')
images_dir=${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}/images
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- operator crds core kafka || echo ' (working tree with uncommitted changes)'); operator image $image built $(date -u -r "$images_dir/operator.tar" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '(unknown)'); chart defaults: $replicas replicas, leader election on."
echo

timeout $((SECONDS_MAX + 180)) target/release/millpond-fleet-bench \
    --count "$COUNT" --namespace "$NS" --operator-namespace "$OPERATOR_NS" \
    --release "$RELEASE" --topic "$TOPIC" --interval-seconds "$INTERVAL" \
    --steady-intervals "$INTERVALS" --settle-seconds "$SETTLE" --max-seconds "$SECONDS_MAX"
status=$?
if ((status != 0)); then
    echo "fleet: the benchmark failed ($status); the operator's last log lines:" >&2
    kubectl logs -n "$OPERATOR_NS" -l app.kubernetes.io/instance="$RELEASE" --tail=20 >&2
fi
exit "$status"
