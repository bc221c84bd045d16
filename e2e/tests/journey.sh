#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e/tests/journey.sh: the user journey under load, on the real stack.
#
#   e2e/stack up && eval "$(e2e/stack env)" && e2e/tests/journey.sh
#
# `kubectl apply` the CRD → `helm install` the chart → `kubectl apply` the
# sample examples/burst-http.yaml (a 12-partition topic into an HTTP sink)
# → produce a burst of JOURNEY_RECORDS (default 1M) records. The sink is
# millpond-test-sink: it holds every batch for a second and records every id
# it acknowledges, so a pod's throughput is bound by latency, not by the two
# cores, and more pods or more writes in flight really drain faster. Then:
#   * the operator scales out, never above the 12 partitions;
#   * killing the leader operator mid-burst hands over without losing the
#     decisions made so far;
#   * the operator tunes flush size and in-flight writes within the bounds;
#   * the lag drains, and every record reaches the sink, duplicates bounded;
#   * after the stabilization window it scales back in to minReplicas;
#   * `kubectl get mpc` shows the columns.
# Prints a table of lag, replicas and limits as it goes, and writes the
# timeline as JSON and SVG to JOURNEY_OUT (default target/journey;
# JOURNEY_OUT=docs refreshes the copy in the docs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack KAFKA_BOOTSTRAP_SERVERS MILLPOND_HOST_IP

RECORDS=${JOURNEY_RECORDS:-1000000}
OUT=${JOURNEY_OUT:-target/journey}
SAMPLE_SECONDS=${JOURNEY_SAMPLE_SECONDS:-2}
# The sink listens on the host address the pods reach.
SINK_ADDR=$MILLPOND_HOST_IP:18480
SINK_HOLD_MS=1000
RECORD_BYTES=200
NS="millpond-journey-$$"
RELEASE="mp"
NAME="clicks"
TOPIC="clicks-$$"
PARTITIONS=12
WORK=$(mktemp -d /tmp/millpond-journey.XXXXXX)
SAMPLES="$WORK/samples.jsonl"

cleanup() {
    [[ -n ${recorder:-} ]] && kill "$recorder" 2>/dev/null
    helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    [[ -n ${sink:-} ]] && kill "$sink" 2>/dev/null
    e2e/stack topic delete "$TOPIC" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

mpc() { kubectl get mpc "$NAME" -n "$NS" -o jsonpath="$1" 2>/dev/null; }
sink_stats() { curl -fsS "http://$SINK_ADDR/stats${1:-}"; }
delivered() { sink_stats | jq -r .unique; }
leader() { operator_leader "$NS" "$RELEASE"; }

# The largest flush size and in-flight writes any running pod reports on
# its own /metrics: `{"flushBytes": N, "maxInFlight": N}`.
pods_levers() {
    local ip
    for ip in $(kubectl get pods -n "$NS" -l "app.kubernetes.io/instance=$NAME" \
        --field-selector=status.phase=Running -o jsonpath='{.items[*].status.podIP}' 2>/dev/null); do
        curl -fsS --max-time 2 "http://$ip:9090/metrics" 2>/dev/null
    done | awk '$1 == "millpond_limit_flush_bytes" && $2 > f { f = $2 }
                $1 == "millpond_limit_max_in_flight" && $2 > n { n = $2 }
                END { printf "{\"flushBytes\": %d, \"maxInFlight\": %d}\n", f, n }'
}

# One sample a line: the consumer's status, the Deployment's replicas, the
# limits the pods report and what the sink acknowledged.
record() {
    local start=$1 m s d p line
    printf '%6s %9s %6s %10s %10s %11s %10s\n' time replicas ready lag delivered flushBytes inFlight
    while :; do
        if m=$(kubectl get mpc "$NAME" -n "$NS" -o json 2>/dev/null) && s=$(sink_stats 2>/dev/null) &&
            d=$(kubectl get deploy "$NAME" -n "$NS" -o jsonpath='{.spec.replicas}' 2>/dev/null); then
            p=$(pods_levers)
            line=$(jq -cn --argjson m "$m" --argjson s "$s" --argjson p "$p" --argjson d "${d:-0}" \
                --argjson t $(($(date +%s) - start)) '{
                deployment: $d, pods: $p,
                t: $t,
                replicas: ($m.status.replicas // 0), ready: ($m.status.readyReplicas // 0),
                lag: ($m.status.lag.total // 0),
                flushBytes: ($m.status.limits.flushBytes // 0), maxInFlight: ($m.status.limits.maxInFlight // 0),
                fullness: ($m.status.bufferFullness // 0),
                delivered: $s.unique, duplicates: $s.duplicates,
                reason: ([$m.status.conditions[]? | select(.type == "Scaling") | .message][0]) }')
            echo "$line" >>"$SAMPLES"
            jq -r '[(.t|tostring)+"s", .replicas, .ready, .lag, .delivered, .flushBytes, .maxInFlight] | @tsv' <<<"$line" |
                xargs printf '%6s %9s %6s %10s %10s %11s %10s\n'
        fi
        sleep "$SAMPLE_SECONDS"
    done
}

# The test sink: every batch held a second, every id recorded.
target/release/millpond-test-sink --listen "$SINK_ADDR" --hold-ms "$SINK_HOLD_MS" 2>"$WORK/sink.log" &
sink=$!
if poll 10 sink_stats; then
    pass "the test sink listens on $SINK_ADDR and holds each batch ${SINK_HOLD_MS} ms"
else
    fail "the test sink starts" "$(cat "$WORK/sink.log")"
    finish
    exit 1
fi

install_operator "$NS" "$RELEASE" 5

e2e/stack topic create "$TOPIC" "$PARTITIONS" >/dev/null
sed -e "s|bootstrapServers: .*|bootstrapServers: $KAFKA_BOOTSTRAP_SERVERS|" -e "s|topic: clicks|topic: $TOPIC|" \
    -e "s|url: http://[^/]*/|url: http://$SINK_ADDR/|" \
    examples/burst-http.yaml | kubectl apply -n "$NS" -f - >/dev/null
partitions_seen() { [[ $(mpc '{.status.partitions}') == "$PARTITIONS" ]]; }
if poll 120 kubectl rollout status "deployment/$NAME" -n "$NS" --timeout=5s && poll 60 partitions_seen; then
    pass "examples/burst-http.yaml runs one pod on the $PARTITIONS-partition topic before the burst"
else
    fail "the sample consumer starts" "$(kubectl get deploy,pods -n "$NS" -o wide 2>&1)" "$(mpc '{.status}')"
fi

start=$(date +%s)
record "$start" &
recorder=$!

produced=$(target/release/millpond-loadgen --topic "$TOPIC" --partitions "$PARTITIONS" --records "$RECORDS" --size "$RECORD_BYTES")
echo "# $produced"

decided() { mpc '{.status.replicas}'; }
scaled_out() { (($(decided) > 1)); }
if poll 120 scaled_out; then
    pass "the operator scales out on the burst (to $(decided) replicas)"
else
    fail "scale-out on the burst" "$(mpc '{.status}')"
fi

# The leader dies mid-burst: the other replica takes over with the decision
# state (kept on the Deployment), so the pods it scaled out stay.
policy_state() { kubectl get deploy "$NAME" -n "$NS" -o jsonpath='{.metadata.annotations.millpond\.io/policy-state}' 2>/dev/null; }
old_leader=$(leader)
at_kill=$(decided)
before_kill_at=$(policy_state | jq -r '.atMs // 0')
killed_at=$SECONDS
kubectl delete pod -n "$NS" "$old_leader" --wait=false >/dev/null
new_leader() { local l; l=$(leader); [[ -n $l && $l != "$old_leader" ]]; }
if poll 60 new_leader; then
    pass "killing the leader ($old_leader) mid-burst hands over to $(leader) in $((SECONDS - killed_at)) s"
else
    fail "leader hand-over mid-burst" "lease holder: $(leader)"
fi
lowest=$at_kill
for _ in $(seq 10); do
    r=$(decided)
    ((r < lowest)) && lowest=$r
    sleep 1
done
if ((lowest >= at_kill)); then
    pass "the new leader keeps the scale-out ($at_kill replicas at hand-over, none removed)"
else
    fail "the new leader keeps the scale-out" "$at_kill replicas at hand-over, then $lowest"
fi
# ... because it continues from the saved state, not from scratch: its first
# decision still holds the demand the old leader recorded before the kill.
elected_at=$(policy_state | jq -r '.atMs // 0')
decided_since_election() { (($(policy_state | jq -r '.atMs // 0') > elected_at)); }
if poll 60 decided_since_election; then
    oldest=$(policy_state | jq -r '[.recommendations[].atMs] | min // empty')
    if [[ -n $oldest ]] && ((oldest <= before_kill_at)); then
        pass "the new leader's first decision continues the old leader's state (demand recorded at $oldest ms, before the kill)"
    else
        fail "the new leader continues the saved state" "oldest recommendation ${oldest:-none}, old leader's last decision at $before_kill_at"
    fi
else
    fail "the new leader decides" "$(policy_state)"
fi

all_delivered() { (($(delivered) >= RECORDS)); }
if poll 900 all_delivered; then
    pass "every one of the $RECORDS records reached the sink"
else
    fail "every record reached the sink" "$(sink_stats "?expected=$RECORDS")"
fi
lag_zero() { [[ $(mpc '{.status.lag.total}') == 0 ]]; }
if poll 60 lag_zero; then
    pass "the lag drains to 0"
else
    fail "the lag drains to 0" "$(mpc '{.status.lag}')"
fi
check_contains "kubectl get mpc shows replicas, lag, fullness and status" \
    "$(kubectl get mpc -n "$NS" 2>&1)" REPLICAS READY LAG FULLNESS LIMITED STATUS "$NAME"

min_replicas=$(mpc '{.spec.autoscaling.minReplicas}')
scaled_in() { [[ $(decided) == "$min_replicas" && $(mpc '{.status.readyReplicas}') == "$min_replicas" ]]; }
if poll 300 scaled_in; then
    pass "after the stabilization window it scales back in to minReplicas ($min_replicas)"
else
    fail "scale-in after the burst" "$(mpc '{.status}')"
fi
sleep "$SAMPLE_SECONDS"
kill "$recorder" 2>/dev/null
wait "$recorder" 2>/dev/null
recorder=

mkdir -p "$OUT"
summary=$(target/release/millpond-timeline --input "$SAMPLES" --json "$OUT/journey.json" --svg "$OUT/journey.svg" \
    --title "$RECORDS records into 12 partitions, sink holding each batch ${SINK_HOLD_MS} ms")
echo "# timeline: $OUT/journey.json, $OUT/journey.svg"
echo "# $summary"
peak=$(jq .peakReplicas <<<"$summary")
if ((peak > 1 && peak <= PARTITIONS)); then
    pass "replicas peaked at $peak, never above the $PARTITIONS partitions"
else
    fail "replicas stay within the partitions" "peak $peak"
fi
flush_first=$(jq .flushBytes.first <<<"$summary")
flush_max=$(jq .flushBytes.max <<<"$summary")
inflight_first=$(jq .maxInFlight.first <<<"$summary")
inflight_max=$(jq .maxInFlight.max <<<"$summary")
if ((flush_max > flush_first || inflight_max > inflight_first)); then
    pass "limits adapt: flushBytes $flush_first → up to $flush_max, maxInFlight $inflight_first → up to $inflight_max"
else
    fail "limits adapt" "$summary"
fi
# Which lever moved first, from the Deployment and the pods' own metrics:
# a sink-bound burst is answered with larger flushes or more writes in
# flight before more pods.
first_limits=$(jq -s 'map(select(.pods.flushBytes > 0)) | .[0].pods' "$SAMPLES")
levers=$(jq -s --argjson f "$first_limits" '{
    tuned: (map(select(.pods.flushBytes > $f.flushBytes or .pods.maxInFlight > $f.maxInFlight)) | .[0]),
    added: (map(select(.deployment > 1)) | .[0]) }' "$SAMPLES")
tuned_at=$(jq '.tuned.t // empty' <<<"$levers")
added_at=$(jq '.added.t // empty' <<<"$levers")
if [[ -n $tuned_at ]] && { [[ -z $added_at ]] || ((tuned_at < added_at)); }; then
    pass "tuning first: the pods ran $(jq -c '.tuned.pods' <<<"$levers") at ${tuned_at}s (from $(jq -c . <<<"$first_limits")), the Deployment went above 1 replica at ${added_at:-no}s"
else
    fail "tuning first" "limits moved on the pods at ${tuned_at:-never}s, the Deployment went above 1 replica at ${added_at:-never}s" \
        "$(jq -c '.added.reason' <<<"$levers")"
fi
if ((flush_max <= 512 * 1024 && inflight_max <= 3)); then
    pass "and stay within the autotune bounds (512Ki, 3)"
else
    fail "limits within the autotune bounds" "$summary"
fi
# The pods themselves run the decided limits (their own metrics, not status).
pods_limits() {
    local ip
    for ip in $(kubectl get pods -n "$NS" -l "app.kubernetes.io/instance=$NAME" \
        --field-selector=status.phase=Running -o jsonpath='{.items[*].status.podIP}'); do
        curl -fsS --max-time 5 "http://$ip:9090/metrics" |
            awk '$1 == "millpond_limits_generation" || $1 == "millpond_limit_flush_bytes" || $1 == "millpond_limit_max_in_flight" { v[$1] = $2 }
                 END { printf "%s %s %s\n", v["millpond_limits_generation"], v["millpond_limit_flush_bytes"], v["millpond_limit_max_in_flight"] }'
    done | sort -u
}
decided_limits() { mpc '{.status.limits.generation} {.status.limits.flushBytes} {.status.limits.maxInFlight}'; }
pods_on_decided() { [[ -n $(pods_limits) && $(pods_limits) == "$(decided_limits)" ]]; }
if poll 30 pods_on_decided; then
    pass "every running pod reports the decided limits generation and values ($(decided_limits))"
else
    fail "pods run the decided limits" "pods: $(pods_limits | tr '\n' ';') decided: $(decided_limits)" \
        "behind: $(mpc '{.status.podsBehindLimits}')"
fi

final=$(sink_stats "?expected=$RECORDS")
check "no record is missing at the sink" 0 "$(jq .missing <<<"$final")"
# Each rebalance or pod stop may redeliver at most what was written but not
# yet committed: the writes in flight plus the batch being filled, per pod.
events=$(jq '.scaleUps + .scaleDowns + 2' <<<"$summary")
bound=$((events * (inflight_max + 2) * flush_max / RECORD_BYTES))
dups=$(jq .duplicates <<<"$final")
if ((dups <= bound)); then
    pass "duplicates are bounded: $dups (bound $bound from $events hand-overs)"
else
    fail "duplicates are bounded" "$dups duplicates, bound $bound"
fi
check "the operator never restarted" "" \
    "$(kubectl get pods -n "$NS" -l app.kubernetes.io/name=millpond-operator -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{"\n"}{end}' | grep -v '^0$')"

finish
