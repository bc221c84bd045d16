#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# bench/connect-iceberg.sh: Millpond's Iceberg sink beside Kafka Connect
# with Apache Iceberg's sink connector, on the same topics, REST catalog and
# S3 store. A benchmark, not a test (not part of e2e/test); bounded: two
# topics of 2M records (--records), six runs, each given up after
# 900 s; stops by itself.
#
#   bench/connect-iceberg.sh [millpond-connect-bench flags]
#
# Brings up what it needs (`e2e/stack up kafka iceberg`), resolves the
# Connect worker and the connector once (e2e/lib/connect.sh), builds the
# consumer and the benchmark, and runs target/release/millpond-connect-bench:
# each contender in turn into fresh tables (topics spread evenly and with a
# hot partition), then each killed with SIGKILL part way and restarted.
# Millpond runs under a 128 MiB cgroup limit with MEMORY_BUDGET=128Mi; the
# worker with the heap connect-distributed.sh gives it (-Xms256M -Xmx2G).
# Prints a Markdown report; writes docs/connect-iceberg.svg. Needs root
# (control groups). Its scratch (worker logs) is /tmp/millpond-connect-bench.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

e2e/stack up kafka iceberg >&2
eval "$(e2e/stack env)"
e2e/connect/worker --fetch >&2
cargo build --release -q -p millpond-consumer -p millpond-bench --bin millpond-consumer --bin millpond-connect-bench >&2
rm -rf /tmp/millpond-connect-bench
exec target/release/millpond-connect-bench "$@"
