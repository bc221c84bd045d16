#!/usr/bin/env bash
# The journey into an Apache Iceberg table, on the real local stack (Kafka,
# the control plane, the node, the S3 store, the Iceberg REST catalog):
# helm install the operator → a table in the catalog (pyiceberg) → a
# MillpondConsumer writing it through the REST catalog with the store's keys
# from a Secret → a burst of JOURNEY_RECORDS (default 600000) records into a
# 12-partition topic. While the operator scales as it sees fit, it prints
# replicas, lag and the rows the table holds; at the end an independent
# reader (pyiceberg) counts every id once, and the table's offsets equal the
# group's commits. Everything it created is removed.
#
# Run through `e2e/demo --iceberg [RECORDS]`.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack KAFKA_BOOTSTRAP_SERVERS ICEBERG_REST_URI ICEBERG_PYTHON S3_ENDPOINT

RECORDS=${JOURNEY_RECORDS:-600000}
NS="millpond-iceberg-$$"
RELEASE="mp"
NAME="clicks"
TOPIC="clicks-iceberg-$$"
TABLE="millpond_demo.clicks_$$"
PARTITIONS=12

cleanup() {
    helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
}
trap cleanup EXIT

table() { "$ICEBERG_PYTHON" e2e/iceberg/table.py "$@"; }
rows() { table ids "$TABLE" | jq -r .rows; }
mpc() { kubectl get mpc "$NAME" -n "$NS" -o jsonpath="$1" 2>/dev/null; }

install_operator "$NS" "$RELEASE" 5
e2e/stack topic create "$TOPIC" "$PARTITIONS" >/dev/null
table create "$TABLE" && pass "table $TABLE created in the REST catalog (pyiceberg)"
kubectl create secret generic lake -n "$NS" \
    --from-literal=id="$S3_ACCESS_KEY_ID" --from-literal=secret="$S3_SECRET_ACCESS_KEY" >/dev/null

kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: $NAME
spec:
  kafka:
    bootstrapServers: $KAFKA_BOOTSTRAP_SERVERS
    topic: $TOPIC
    config: {auto.offset.reset: earliest}
  sink:
    url: iceberg://${TABLE%%.*}/${TABLE#*.}
    iceberg: {catalogUri: "$ICEBERG_REST_URI"}
    s3:
      endpoint: $S3_ENDPOINT
      region: $S3_REGION
      accessKeyIdSecretRef: {name: lake, key: id}
      secretAccessKeySecretRef: {name: lake, key: secret}
  resources: {memory: 128Mi}
  limits: {flushBytes: 2Mi, flushIntervalMs: 2000, maxInFlight: 1}
  autoscaling:
    minReplicas: 1
    maxReplicas: 6
    targetDrainSeconds: 10
    scaleDownStabilizationSeconds: 30
    maxScaleDownStep: 6
EOF
if poll 120 kubectl rollout status "deployment/$NAME" -n "$NS" --timeout=5s; then
    pass "one pod writes the table before the burst"
else
    fail "the consumer starts" "$(kubectl get deploy,pods -n "$NS" -o wide 2>&1)" "$(mpc '{.status}')"
fi

echo "# $(target/release/millpond-loadgen --topic "$TOPIC" --partitions "$PARTITIONS" --records "$RECORDS" --size 200)"
most=1
printf '%8s %9s %10s %10s\n' seconds replicas lag rows
start=$SECONDS
while ((SECONDS - start < 900)); do
    replicas=$(mpc '{.status.replicas}')
    ((${replicas:-0} > most)) && most=$replicas
    got=$(rows)
    printf '%8d %9s %10s %10s\n' $((SECONDS - start)) "$replicas" "$(mpc '{.status.lag.total}')" "$got"
    ((got >= RECORDS)) && ((replicas == 1)) && break
    sleep 5
done

read_back=$(table ids "$TABLE")
check "pyiceberg reads every record" "$RECORDS" "$(jq .rows <<<"$read_back")"
check "no record twice" 0 "$(jq .duplicates <<<"$read_back")"
# How many pods the burst took is the policy's call (one pod may drain it
# within targetDrainSeconds): reported, not checked.
echo "# at most $most pods wrote the table; $(mpc '{.status.replicas}') at the end"
echo "# the table's offsets: $(jq -r ".summary[\"millpond.offsets.$TOPIC\"]" <<<"$read_back")"
echo "# data files: $(jq '.data_files | length' <<<"$read_back") (median $(jq .median_file_bytes <<<"$read_back") bytes), snapshots: $(jq .snapshots <<<"$read_back")"
finish
