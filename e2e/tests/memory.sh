#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e/tests/memory.sh: the memory promise under a real memory limit.
#
#   e2e/stack up && e2e/tests/memory.sh
#
# One consumer pod (a MillpondConsumer with `resources.memory: 128Mi`,
# autoscaling paused at 1 replica) catches up on a backlog of MEMORY_RECORDS
# (default 1.3M) records of 500 B over 8 partitions, about 650 MB, into a
# file sink on a PersistentVolumeClaim. The limit is the container's memory
# cgroup on the real node, which also charges the page cache of the files
# it writes and its socket buffers. Checks: every record delivered exactly
# once (no restart, so no redelivery), restartCount 0, never OOMKilled.
# Prints the container's peak memory from its cgroup and its peak RSS.
#
# MEMORY_SINK=iceberg: the same backlog into an Apache Iceberg table of the
# stack's REST catalog and S3 store instead (e2e/stack up iceberg), read
# back by pyiceberg.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack KAFKA_BOOTSTRAP_SERVERS
SINK_KIND=${MEMORY_SINK:-file}
[[ $SINK_KIND == iceberg ]] && require_stack ICEBERG_REST_URI ICEBERG_PYTHON S3_ENDPOINT

RECORDS=${MEMORY_RECORDS:-1300000}
RECORD_BYTES=500
PARTITIONS=8
NS="millpond-memory-$$"
RELEASE="mp"
TOPIC="memory-$$"
SINK="/tmp/millpond-memory-$$"

cleanup() {
    helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    delete_host_volume "$NS" sink "$SINK"
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
}
trap cleanup EXIT

install_operator "$NS" "$RELEASE" 5
host_volume "$NS" sink "$SINK"
TABLE="millpond_memory.catchup_$$"
if [[ $SINK_KIND == iceberg ]]; then
    "$ICEBERG_PYTHON" e2e/iceberg/table.py create "$TABLE" >/dev/null
    kubectl create secret generic lake -n "$NS" \
        --from-literal=id="$S3_ACCESS_KEY_ID" --from-literal=secret="$S3_SECRET_ACCESS_KEY" >/dev/null
    sink_spec="{url: \"iceberg://${TABLE%%.*}/${TABLE#*.}\", iceberg: {catalogUri: \"$ICEBERG_REST_URI\"},
    s3: {endpoint: \"$S3_ENDPOINT\", region: \"$S3_REGION\",
      accessKeyIdSecretRef: {name: lake, key: id}, secretAccessKeySecretRef: {name: lake, key: secret}}}"
else
    sink_spec='{url: "file:///sink/catchup"}'
fi

produced=$(target/release/millpond-loadgen --topic "$TOPIC" --create-partitions "$PARTITIONS" \
    --records "$RECORDS" --size "$RECORD_BYTES")
echo "# backlog: $produced"

kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata: {name: catchup}
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $TOPIC}
  sink: $sink_spec
  template:
    volumes: [{name: sink, mountPath: /sink, persistentVolumeClaim: {claimName: sink}}]
  resources: {memory: 128Mi}
  replicas: 1
  autoscaling: {paused: true, minReplicas: 1, maxReplicas: 1}
EOF

pod_json() { kubectl get pods -n "$NS" -l app.kubernetes.io/instance=catchup -o json; }
running() { [[ $(pod_json | jq -r '.items[0].status.containerStatuses[0].state | keys[0]') == running ]]; }
if ! poll 120 running; then
    fail "the consumer pod starts" "$(kubectl get pods -n "$NS" -o wide 2>&1)" "$(kubectl logs -n "$NS" deployment/catchup --tail=20 2>&1)"
    finish
    exit 1
fi
pid=$(container_pid "$(pod_json | jq -r '.items[0].status.containerStatuses[0].containerID')")
memcg=$(memory_cgroup "$pid")
echo "# limits the operator derived for 128Mi: $(kubectl get configmap catchup-limits -n "$NS" -o json | jq -c .data)"
echo "# consumer pid $pid, memory cgroup $memcg (limit $(numfmt --to=iec-i "$(cat "$memcg/memory.limit_in_bytes")"))"

if [[ $SINK_KIND == iceberg ]]; then
    lines() { "$ICEBERG_PYTHON" e2e/iceberg/table.py ids "$TABLE" | jq .rows; }
    distinct() { "$ICEBERG_PYTHON" e2e/iceberg/table.py ids "$TABLE" | jq .distinct; }
else
    lines() { cat "$SINK"/catchup/*.ndjson 2>/dev/null | wc -l; }
    distinct() { cat "$SINK"/catchup/*.ndjson | grep -o '"id":[0-9]*' | sort -u | wc -l; }
fi
restarts() { pod_json | jq -r '[.items[].status.containerStatuses[0].restartCount] | add // 0'; }
# Keeps the last VmHWM seen: it is gone once the process exits.
hwm_kib=0
caught_up() {
    local h
    h=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [[ -n $h ]] && hwm_kib=$h
    (($(restarts) == 0)) || return 0
    (($(lines) >= RECORDS))
}
started=$SECONDS
poll 900 caught_up
took=$((SECONDS - started))

check "the 128Mi pod never restarted while catching up" 0 "$(restarts)"
check "and was never OOMKilled" "" \
    "$(pod_json | jq -r '.items[0].status.containerStatuses[0].lastState.terminated.reason // ""')"
check "every one of the $RECORDS records reached the sink" "$RECORDS" "$(lines)"
check "each exactly once" "$RECORDS" "$(distinct)"

# What the cgroup charged: its peak (page cache included, which the kernel
# reclaims at the limit), kernel memory and TCP buffers, the process' peak
# RSS, and what was resident when it had caught up.
mib() { echo "$(($1 / 1048576)) MiB"; }
stat() { awk -v k="$1" '$1 == k { print $2 }' "$memcg/memory.stat"; }
echo "# caught up on $((RECORDS * RECORD_BYTES / 1000000)) MB into the $SINK_KIND sink in ${took}s under a $(mib "$(cat "$memcg/memory.limit_in_bytes")") limit:" \
    "cgroup peak $(mib "$(cat "$memcg/memory.max_usage_in_bytes")") (page cache included)," \
    "kernel memory peak $(mib "$(cat "$memcg/memory.kmem.max_usage_in_bytes")"), TCP buffers peak $(mib "$(cat "$memcg/memory.kmem.tcp.max_usage_in_bytes")")," \
    "peak RSS $((hwm_kib / 1024)) MiB; at the end rss $(mib "$(stat total_rss)"), page cache $(mib "$(stat total_cache)"), dirty $(mib "$(stat total_dirty)")"

finish
