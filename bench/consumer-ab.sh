#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# bench/consumer-ab.sh: two builds of millpond-consumer side by side,
# alternating A, B, A, B on one topic, so both see the same broker and the
# same noise. A benchmark, not a test; bounded: PAIRS (default 4) pairs per
# sink, each run stops once every record is delivered (or after 120 s).
#
#   e2e/stack up kafka && bench/consumer-ab.sh OLD/millpond-consumer target/release/millpond-consumer
#
# Each run: a fresh group reads RECORDS (2M) records of 500 B over 8
# partitions into the NDJSON file sink, the Parquet file sink and the HTTP
# sink (millpond-test-sink answering at once), and is timed from start to
# `millpond_records_delivered_total` = RECORDS (group join included).
# Prints seconds per run and the mean per build and sink.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

# shellcheck source=../e2e/tests/lib.sh
source e2e/tests/lib.sh
require_stack KAFKA_BOOTSTRAP_SERVERS

A=${1:?usage: consumer-ab.sh A/millpond-consumer B/millpond-consumer}
B=${2:?usage: consumer-ab.sh A/millpond-consumer B/millpond-consumer}
RECORDS=${RECORDS:-2000000}
PAIRS=${PAIRS:-4}
TOPIC="bench-ab-$$"
WORK=$(mktemp -d /tmp/millpond-bench-ab.XXXXXX)
SINK_PORT=18482

cleanup() {
    [[ -n ${SINK_PID:-} ]] && kill "$SINK_PID" 2>/dev/null
    rm -rf "$WORK"
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
}
trap cleanup EXIT

target/release/millpond-loadgen --topic "$TOPIC" --create-partitions 8 \
    --records "$RECORDS" --size 500 >&2 || exit 1
target/release/millpond-test-sink --listen "127.0.0.1:$SINK_PORT" --hold-ms 0 >/dev/null 2>&1 &
SINK_PID=$!

# run BIN SINK_URL: seconds until every record is delivered.
run() {
    local port=$((20000 + RANDOM % 20000)) started delivered pid
    KAFKA_TOPIC=$TOPIC KAFKA_GROUP_ID="ab-$RANDOM$RANDOM" SINK_URL=$2 \
        METRICS_ADDR="127.0.0.1:$port" RUST_LOG=warn "$1" 2>/dev/null &
    pid=$!
    started=$(date +%s.%N)
    for _ in $(seq 1200); do
        delivered=$(curl -s "127.0.0.1:$port/metrics" |
            awk '$1 == "millpond_records_delivered_total" { print $2 }')
        [[ $delivered == "$RECORDS" ]] && break
        sleep 0.1
    done
    echo "$(date +%s.%N) - $started" | bc
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$WORK/out"
}

for _ in $(seq "$PAIRS"); do
    for build in A B; do
        bin=$A
        [[ $build == B ]] && bin=$B
        echo "$build ndjson $(run "$bin" "file://$WORK/out")"
        echo "$build parquet $(run "$bin" "file://$WORK/out?format=parquet")"
        echo "$build http $(run "$bin" "http://127.0.0.1:$SINK_PORT/ingest")"
    done
done | awk '{ print; key = $1 " " $2; sum[key] += $3; n[key]++ }
    END { for (k in sum) printf "mean %s %.2f s (%d runs)\n", k, sum[k] / n[k], n[k] }'
