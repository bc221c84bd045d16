#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# bench/keda.sh [WORKLOAD...]: Millpond beside the real KEDA, on the
# real stack, on the same bursts. A benchmark, not a test (e2e/test does not
# run it); bounded: each run stops once its burst is delivered and its
# Deployment is back at one pod, or after BENCH_RUN_SECONDS (default 900),
# and everything it created is removed at the end.
#
#   e2e/stack up && bench/keda.sh              # step skewed waves
#   bench/keda.sh step                         # one workload
#
# BENCH_CONTENDERS="millpond" (or "keda") runs one side only; the report
# reads the other side's samples from an earlier run in BENCH_OUT.
#
# Workloads (BENCH_RECORDS, default 1,000,000 records of 200 B, on a
# 12-partition topic): `step` (all at once), `skewed` (all at once, 40 % on
# partition 0), `waves` (half, then the other half BENCH_PAUSE_SECONDS,
# default 240, later).
#
# Each workload runs twice, one contender alone on the stack at a time,
# into the same latency-bound test sink (every batch held a second):
#   * keda: a plain Deployment of the consumer image with the sample's
#     starting limits (128Ki flushes, one write in flight, 128Mi), scaled
#     by a KEDA ScaledObject with the Kafka trigger, 1 to 12 replicas,
#     lagThreshold BENCH_LAG_THRESHOLD (see docs/autoscaling.md for why),
#     everything else KEDA's and the HPA's defaults;
#   * millpond: examples/burst-http.yaml (the same image, starting limits
#     and replica bounds) on a helm-installed operator.
# `millpond-scale-bench run` produces the burst and samples the Deployment,
# the group's lag from Kafka and the sink; `millpond-scale-bench report`
# prints the tables (and, with BENCH_SVG_DIR, the plots) at the end.
# KEDA is built and started by `e2e/stack up keda` (about 4 minutes the
# first time), and stopped again at the end.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

# shellcheck source=../e2e/tests/lib.sh
source e2e/tests/lib.sh
require_stack KAFKA_BOOTSTRAP_SERVERS MILLPOND_HOST_IP

WORKLOADS=("$@")
((${#WORKLOADS[@]})) || WORKLOADS=(step skewed waves)
RECORDS=${BENCH_RECORDS:-1000000}
RUN_SECONDS=${BENCH_RUN_SECONDS:-900}
PAUSE_SECONDS=${BENCH_PAUSE_SECONDS:-240}
LAG_THRESHOLD=${BENCH_LAG_THRESHOLD:-30000}
read -r -a CONTENDERS <<<"${BENCH_CONTENDERS:-keda millpond}"
OUT=${BENCH_OUT:-target/bench-keda}
PARTITIONS=12
NAME=clicks
RELEASE=mp
OPERATOR_NS="millpond-bench-keda-operator-$$"
SINK_ADDR=$MILLPOND_HOST_IP:18481
WORK=$(mktemp -d /tmp/millpond-bench-keda.XXXXXX)
started_keda=

cleanup() {
    [[ -n ${sink:-} ]] && kill "$sink" 2>/dev/null
    helm uninstall "$RELEASE" -n "$OPERATOR_NS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$OPERATOR_NS" --ignore-not-found --timeout=120s >/dev/null 2>&1
    [[ -n $started_keda ]] && e2e/stack down keda >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet -p millpond-bench -p millpond-e2e --bin millpond-scale-bench --bin millpond-test-sink || exit 1
mkdir -p "$OUT"

if ! kubectl get apiservice v1beta1.external.metrics.k8s.io >/dev/null 2>&1; then
    e2e/stack up keda || exit 1
    started_keda=1
fi
# shellcheck source=../e2e/lib/keda.sh
keda_version=$(source e2e/lib/keda.sh && keda_version)
echo "# KEDA $keda_version, lagThreshold $LAG_THRESHOLD; $RECORDS records a workload; samples in $OUT"

# The consumer image and the chart's operator: the same as a user's.
# shellcheck source=../e2e/lib/images.sh
image=$(source e2e/lib/images.sh && echo "$IMAGE_CONSUMER")
install_operator "$OPERATOR_NS" "$RELEASE" 15

# A fresh sink for each run: its counts are the run's.
start_sink() {
    [[ -n ${sink:-} ]] && kill "$sink" 2>/dev/null && wait "$sink" 2>/dev/null
    target/release/millpond-test-sink --listen "$SINK_ADDR" --hold-ms 1000 2>"$WORK/sink.log" &
    sink=$!
    poll 10 curl -fsS "http://$SINK_ADDR/stats" >/dev/null
}

keda_contender() { # NS TOPIC
    kubectl apply -n "$1" -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $NAME}
spec:
  replicas: 1
  selector: {matchLabels: {app: $NAME}}
  template:
    metadata: {labels: {app: $NAME}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: consumer
        image: $image
        imagePullPolicy: IfNotPresent
        env:
        - {name: KAFKA_BOOTSTRAP_SERVERS, value: "$KAFKA_BOOTSTRAP_SERVERS"}
        - {name: KAFKA_TOPIC, value: "$2"}
        - {name: KAFKA_GROUP_ID, value: "millpond-$2"}
        - {name: KAFKA_CONFIG, value: "auto.offset.reset=earliest"}
        - {name: SINK_URL, value: "http://$SINK_ADDR/ingest"}
        - {name: HTTP_TIMEOUT_MS, value: "10000"}
        - {name: MEMORY_BUDGET, value: 128Mi}
        - {name: FLUSH_BYTES, value: 128Ki}
        - {name: FLUSH_INTERVAL_MS, value: "1000"}
        - {name: MAX_IN_FLIGHT, value: "1"}
        resources: {requests: {memory: 128Mi}, limits: {memory: 128Mi}}
        readinessProbe: {httpGet: {path: /readyz, port: 9090}, periodSeconds: 5}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: $NAME}
spec:
  scaleTargetRef: {name: $NAME}
  minReplicaCount: 1
  maxReplicaCount: 12
  triggers:
  - type: kafka
    metadata:
      bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS"
      consumerGroup: "millpond-$2"
      topic: "$2"
      lagThreshold: "$LAG_THRESHOLD"
      offsetResetPolicy: earliest
EOF
}

millpond_contender() { # NS TOPIC
    sed -e "s|bootstrapServers: .*|bootstrapServers: $KAFKA_BOOTSTRAP_SERVERS|" -e "s|topic: clicks|topic: $2|" \
        -e "s|url: http://[^/]*/|url: http://$SINK_ADDR/|" \
        examples/burst-http.yaml | kubectl apply -n "$1" -f - >/dev/null
}

# run WORKLOAD CONTENDER: one contender in a namespace and on a topic of
# its own, one pod ready before the burst.
run() {
    local workload=$1 contender=$2 ns topic
    ns="millpond-bench-keda-$contender-$$"
    topic="bench-keda-$workload-$contender-$$"
    kubectl create namespace "$ns" >/dev/null
    e2e/stack topic create "$topic" "$PARTITIONS" >/dev/null
    start_sink || { fail "the test sink starts" "$(cat "$WORK/sink.log")"; return 1; }
    "${contender}_contender" "$ns" "$topic"
    if poll 120 kubectl rollout status "deployment/$NAME" -n "$ns" --timeout=5s; then
        target/release/millpond-scale-bench run --workload "$workload" --contender "$contender" \
            --namespace "$ns" --deployment "$NAME" --group "millpond-$topic" --topic "$topic" \
            --partitions "$PARTITIONS" --records "$RECORDS" --sink "http://$SINK_ADDR" \
            --pause-seconds "$PAUSE_SECONDS" --max-seconds "$RUN_SECONDS" --out "$OUT" >/dev/null &&
            pass "$workload under $contender: sampled until settled or ${RUN_SECONDS} s"
    else
        fail "$workload under $contender: one pod ready before the burst" "$(kubectl get deploy,pods -n "$ns" 2>&1)"
    fi
    kubectl delete namespace "$ns" --timeout=120s >/dev/null 2>&1
    e2e/stack topic delete "$topic" >/dev/null 2>&1
}

for workload in "${WORKLOADS[@]}"; do
    for contender in "${CONTENDERS[@]}"; do
        run "$workload" "$contender"
    done
done

target/release/millpond-scale-bench report --dir "$OUT" --records "$RECORDS" \
    ${BENCH_SVG_DIR:+--svg-dir "$BENCH_SVG_DIR"}
finish
