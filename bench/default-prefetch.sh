#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# bench/default-prefetch.sh: what the memory test's catch-up does with
# librdkafka's default prefetch under the same 128Mi limit. A benchmark,
# not a test (it is expected to fail); bounded: it stops after
# BENCH_SECONDS (default 300) or when the backlog is delivered.
#
#   e2e/stack up && bench/default-prefetch.sh
#
# One pod of the consumer image, as the operator would run it (same
# security context, same file sink on a volume, same flush size), but with
# librdkafka's default prefetch bounds (`queued.max.messages.kbytes=65536`,
# `fetch.max.bytes=52428800`, `max.partition.fetch.bytes=1048576`; a
# budget of 4Gi lets the consumer accept them) and `limits.memory: 128Mi`.
# Same backlog as e2e/tests/memory.sh: MEMORY_RECORDS (1.3M) records of
# 500 B over 8 partitions. Prints a Markdown summary: OOM kills, restarts,
# records delivered, peak memory of the cgroup.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

# shellcheck source=../e2e/tests/lib.sh
source e2e/tests/lib.sh
require_stack KAFKA_BOOTSTRAP_SERVERS

RECORDS=${MEMORY_RECORDS:-1300000}
SECONDS_MAX=${BENCH_SECONDS:-300}
# The flush size the operator derives for a 128Mi pod on this topic.
FLUSH_BYTES=${BENCH_FLUSH_BYTES:-12584236}
NS="millpond-bench-prefetch-$$"
TOPIC="bench-prefetch-$$"
SINK="/tmp/millpond-bench-prefetch-$$"
IMAGE="docker.io/millpond/consumer:$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' charts/millpond-operator/Chart.yaml)"

cleanup() {
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    delete_host_volume "$NS" sink "$SINK"
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
}
trap cleanup EXIT

kubectl create namespace "$NS" >/dev/null
host_volume "$NS" sink "$SINK"
target/release/millpond-loadgen --topic "$TOPIC" --create-partitions 8 --records "$RECORDS" --size 500 >/dev/null

kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: default-prefetch}
spec:
  replicas: 1
  selector: {matchLabels: {app: default-prefetch}}
  template:
    metadata: {labels: {app: default-prefetch}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
      containers:
        - name: consumer
          image: $IMAGE
          imagePullPolicy: Never
          env:
            - {name: KAFKA_BOOTSTRAP_SERVERS, value: "$KAFKA_BOOTSTRAP_SERVERS"}
            - {name: KAFKA_TOPIC, value: "$TOPIC"}
            - {name: SINK_URL, value: "file:///sink/out"}
            - {name: MEMORY_BUDGET, value: 4Gi}
            - {name: FLUSH_BYTES, value: "$FLUSH_BYTES"}
            - {name: KAFKA_CONFIG, value: "queued.max.messages.kbytes=65536,fetch.max.bytes=52428800,max.partition.fetch.bytes=1048576,fetch.queue.backoff.ms=1000"}
          resources: {limits: {memory: 128Mi}, requests: {memory: 128Mi}}
          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: sink, mountPath: /sink}]
      volumes: [{name: sink, persistentVolumeClaim: {claimName: sink}}]
YAML

status() { kubectl get pods -n "$NS" -l app=default-prefetch -o json | jq -c '.items[0].status.containerStatuses[0] // {}'; }
lines() { cat "$SINK"/out/*.ndjson 2>/dev/null | wc -l; }
started=$SECONDS first_oom="" peak=0
while ((SECONDS - started < SECONDS_MAX)); do
    s=$(status)
    if [[ -z $first_oom && $(jq -r '.lastState.terminated.reason // ""' <<<"$s") == OOMKilled ]]; then
        first_oom=$((SECONDS - started))
    fi
    id=$(jq -r '.containerID // ""' <<<"$s")
    pid=$([[ -n $id ]] && container_pid "$id")
    if [[ -n $pid ]] && cg=$(memory_cgroup "$pid" 2>/dev/null); then
        p=$(cat "$cg/memory.max_usage_in_bytes")
        ((p > peak)) && peak=$p
    fi
    (($(lines) >= RECORDS)) && break
    sleep 1
done
s=$(status)
unique=$(cat "$SINK"/out/*.ndjson 2>/dev/null | grep -o '"id":[0-9]*' | sort -u | wc -l)
echo "| run | restarts | first OOMKilled | delivered (unique of $RECORDS) | lines written | time | cgroup peak |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| librdkafka default prefetch, FLUSH_BYTES=$FLUSH_BYTES, 128Mi limit | $(jq -r '.restartCount // 0' <<<"$s") |" \
    "$([[ -n $first_oom ]] && echo "after $first_oom s" || echo never) | $unique | $(lines) | $((SECONDS - started)) s | $(numfmt --to=iec-i "$peak") |"
