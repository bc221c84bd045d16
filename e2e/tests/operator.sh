#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e/tests/operator.sh: the operator installed the way a user installs it,
# on the real stack (Kafka, Kubernetes control plane, a real node).
#
#   e2e/stack up && e2e/tests/operator.sh
#
# `kubectl apply` the CRD → `helm install` the chart (2 operator replicas,
# leader election, the chart's RBAC and nothing more) → create a topic with
# records → `kubectl apply` a MillpondConsumer. Then:
#   * the operator creates the consumer Deployment, its pods run and every
#     record reaches the file sink on a PersistentVolumeClaim (a hostPath
#     PersistentVolume the test reads back); `kubectl get mpc` shows the
#     columns;
#   * a file:// sink that is not on a mounted volume sets
#     Degraded=SinkNotOnVolume and runs no pod;
#   * editing the spec rolls the consumer pods out;
#   * a Deployment edited by hand, and a Service deleted by hand, are put back;
#   * killing the leader operator pod hands leadership to the other replica,
#     which keeps reconciling;
#   * with autoscaling paused, `kubectl scale mpc` sets the replicas;
#   * with SASL_SSL/SCRAM-SHA-512 and with mutual TLS, credentials and CA
#     from Secrets, the pods deliver every record and the operator's own
#     Kafka client reads the lag over the same listener;
#   * with auto.offset.reset=latest the records written before the group
#     existed are not lag;
#   * a missing topic, an impossible memory budget, a librdkafka override
#     librdkafka refuses, unreachable brokers, a wrong password, a CA that
#     did not sign the brokers' certificate and a missing Secret set Degraded
#     with a reason each, and the operator does not crash-loop;
#   * a ready pod whose metrics cannot be read sets Degraded;
#   * a crash-looping pod sets Ready=False with its reason and the
#     consumer's exit message;
#   * Kafka stopping to answer while a consumer runs sets Degraded and keeps
#     the replicas; Degraded clears when Kafka is back;
#   * deleting the MillpondConsumer removes everything it owned;
#   * installed namespace-scoped (watchNamespaces: two namespaces, Roles
#     there only), the operator runs the consumers of those namespaces and
#     leaves a third namespace's alone.
# Works in a namespace of its own (and, for the namespace-scoped install,
# four more), deleted at the end.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../lib/common.sh
source e2e/lib/common.sh
# shellcheck source=../lib/kafka.sh
source e2e/lib/kafka.sh
require_stack KAFKA_BOOTSTRAP_SERVERS KAFKA_SASL_SSL_BOOTSTRAP_SERVERS KAFKA_MTLS_BOOTSTRAP_SERVERS KAFKA_SSL_BOOTSTRAP_SERVERS KAFKA_CA_FILE

NS="millpond-operator-test-$$"
RELEASE="mp"
TOPIC="operator-test-$$"
# The sink volume: a hostPath PersistentVolume on this directory, claimed
# by the consumers and mounted at /sink; each consumer writes below it.
SINK="/tmp/millpond-operator-test-$$"
RECORDS=100000

# The namespace-scoped install: its release namespace, the two namespaces
# it watches and one it does not.
SCOPED_OPS="$NS-ops"
WATCHED_A="$NS-a"
WATCHED_C="$NS-c"
UNWATCHED="$NS-b"

cleanup() {
    [[ -n ${kafka:-} ]] && kill -CONT "$kafka" 2>/dev/null
    [[ -n ${consumer_pid:-} ]] && kill -CONT "$consumer_pid" 2>/dev/null
    helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
    helm uninstall "$RELEASE" -n "$SCOPED_OPS" --wait --timeout 60s >/dev/null 2>&1
    kubectl delete namespace "$NS" --timeout=60s >/dev/null 2>&1
    kubectl delete namespace "$SCOPED_OPS" "$WATCHED_A" "$WATCHED_C" "$UNWATCHED" --wait=false >/dev/null 2>&1
    delete_host_volume "$NS" sink "$SINK"
}
trap cleanup EXIT

# What the pods of consumer $1 wrote (records by id, and lines), the lag the
# operator read, and a field ($3: status, reason, message) of its condition $2.
sink_ids_of() { cat "$SINK/$1"/*.ndjson 2>/dev/null | jq -r .id | sort -un | wc -l; }
sink_lines_of() { cat "$SINK/$1"/*.ndjson 2>/dev/null | wc -l; }
lag_of() { kubectl get mpc "$1" -n "$NS" -o jsonpath='{.status.lag.total}'; }
condition_of() { kubectl get mpc "$1" -n "$NS" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].$3}" 2>/dev/null; }
sink_lines() { sink_lines_of orders; }
all_delivered() { (( $(sink_lines) >= RECORDS )); }
leader() { operator_leader "$NS" "$RELEASE"; }
gone() { ! kubectl get "$@" -n "$NS" >/dev/null 2>&1; }

# The chart as a user installs it; the operator decides every 3 s here.
install_operator "$NS" "$RELEASE" 3

host_volume "$NS" sink "$SINK"
# The volume every consumer below mounts, and a scratch one for those that
# never deliver.
SINK_VOLUME='volumes: [{name: sink, mountPath: /sink, persistentVolumeClaim: {claimName: sink}}]'
SCRATCH_VOLUME='volumes: [{name: out, mountPath: /out, emptyDir: {}}]'
has_leader() { [[ -n $(leader) ]]; }
poll 60 has_leader && pass "one operator replica holds the leader lease ($(leader))" \
    || fail "a leader is elected" "lease: $(kubectl get lease -n "$NS" -o yaml 2>&1 | tail -20)"

target/release/millpond-loadgen --topic "$TOPIC" --create-partitions 4 --records "$RECORDS" --size 300 >/dev/null
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: orders
spec:
  kafka:
    bootstrapServers: $KAFKA_BOOTSTRAP_SERVERS
    topic: $TOPIC
  sink:
    url: file:///sink/orders
  template:
    $SINK_VOLUME
  resources:
    memory: 256Mi
  autoscaling:
    minReplicas: 1
    maxReplicas: 4
EOF

if poll 120 kubectl rollout status deployment/orders -n "$NS" --timeout=5s; then
    pass "the operator created the consumer Deployment and its pods became ready"
else
    fail "consumer Deployment ready" "$(kubectl get deploy,pods -n "$NS" -o wide 2>&1)" \
        "$(kubectl logs -n "$NS" deployment/orders --tail=20 2>&1)"
fi
if poll 180 all_delivered; then
    pass "every record reached the sink ($(sink_lines) lines for $RECORDS records)"
else
    fail "every record reached the sink" "$(sink_lines) of $RECORDS"
fi
check_contains "kubectl get mpc shows replicas, lag, fullness and status" \
    "$(kubectl get mpc -n "$NS" 2>&1)" REPLICAS READY LAG FULLNESS STATUS orders
lag_zero() { [[ $(kubectl get mpc orders -n "$NS" -o jsonpath='{.status.lag.total}') == 0 ]]; }
poll 60 lag_zero \
    && pass "status.lag.total drops to 0 once the backlog is delivered" \
    || fail "lag reaches 0" "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.status}')"
check "the owned objects carry the consumer's owner reference" "MillpondConsumer/orders" \
    "$(kubectl get deploy orders -n "$NS" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')"

# A spec change rolls out: new pods with the new configuration.
old_hash=$(kubectl get deploy orders -n "$NS" -o jsonpath='{.spec.template.metadata.annotations.millpond\.io/config-hash}')
kubectl patch mpc orders -n "$NS" --type=merge -p '{"spec":{"sink":{"metadata":true}}}' >/dev/null
new_hash() { kubectl get deploy orders -n "$NS" -o jsonpath='{.spec.template.metadata.annotations.millpond\.io/config-hash}'; }
hash_changed() { [[ $(new_hash) != "$old_hash" ]]; }
if poll 60 hash_changed && poll 120 kubectl rollout status deployment/orders -n "$NS" --timeout=5s; then
    check_contains "editing the spec rolls out pods with the new settings" \
        "$(kubectl get deploy orders -n "$NS" -o jsonpath='{.spec.template.spec.containers[0].env}')" '"SINK_METADATA"' '"true"'
else
    fail "editing the spec rolls out" "hash $old_hash -> $(new_hash)" "$(kubectl get deploy,rs,pods -n "$NS" -o wide 2>&1)" \
        "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.status.conditions}' 2>&1)"
fi

generation_seen() { [[ $(kubectl get mpc orders -n "$NS" -o jsonpath='{.status.observedGeneration}') == "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.metadata.generation}')" ]]; }
poll 30 generation_seen && pass "status.observedGeneration follows the edited spec ($(kubectl get mpc orders -n "$NS" -o jsonpath='{.metadata.generation}'))" \
    || fail "observedGeneration" "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.metadata.generation} {.status.observedGeneration}')"

# A hand edit of an owned object is put back.
kubectl set env deployment/orders -n "$NS" SINK_URL=file:///sink/elsewhere >/dev/null
sink_url() { kubectl get deploy orders -n "$NS" -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="SINK_URL")].value}'; }
sink_restored() { [[ $(sink_url) == "file:///sink/orders?format=ndjson" ]]; }
poll 60 sink_restored && pass "a hand-edited Deployment is put back" \
    || fail "a hand-edited Deployment is put back" "SINK_URL=$(sink_url)"

# An owned object deleted by hand is put back.
old_uid=$(kubectl get service orders-metrics -n "$NS" -o jsonpath='{.metadata.uid}')
kubectl delete service orders-metrics -n "$NS" >/dev/null
service_back() { local uid; uid=$(kubectl get service orders-metrics -n "$NS" -o jsonpath='{.metadata.uid}' 2>/dev/null); [[ -n $uid && $uid != "$old_uid" ]]; }
poll 60 service_back && pass "a Service deleted by hand is put back" \
    || fail "a deleted Service is put back" "$(kubectl get svc -n "$NS" 2>&1)"

# Killing the leader hands over to the other replica, which keeps acting.
old_leader=$(leader)
kubectl delete pod -n "$NS" "$old_leader" --wait=false >/dev/null
new_leader_elected() { local l; l=$(leader); [[ -n $l && $l != "$old_leader" ]]; }
if poll 90 new_leader_elected; then
    pass "killing the leader ($old_leader) hands over to $(leader)"
else
    fail "leader hand-over" "lease holder: $(leader)"
fi
# A hand-scaled Deployment goes back to the decided count (the backlog is
# drained: the decision holds), and the decision does not adopt the edit.
replicas() { kubectl get deploy orders -n "$NS" -o jsonpath='{.spec.replicas}'; }
decided() { kubectl get mpc orders -n "$NS" -o jsonpath='{.status.replicas}'; }
decided_before=$(decided)
kubectl scale deployment/orders -n "$NS" --replicas=$((decided_before + 2)) >/dev/null
reverted() { [[ $(replicas) == "$decided_before" && $(decided) == "$decided_before" ]]; }
if [[ -n $decided_before ]] && poll 60 reverted; then
    pass "the new leader puts a hand-scaled Deployment back to its decision ($decided_before, not $((decided_before + 2)))"
else
    fail "the new leader reverts a hand-scaled Deployment" "deployment $(replicas), decided $(decided), before $decided_before"
fi

# Paused autoscaling follows `kubectl scale mpc` (the scale subresource).
kubectl patch mpc orders -n "$NS" --type=merge -p '{"spec":{"autoscaling":{"paused":true}}}' >/dev/null
kubectl scale mpc/orders -n "$NS" --replicas=2 >/dev/null
two_running() { [[ $(replicas) == 2 && $(kubectl get deploy orders -n "$NS" -o jsonpath='{.status.readyReplicas}') == 2 ]]; }
scaling_reason() { condition_of orders Scaling reason; }
if poll 90 two_running && [[ $(scaling_reason) == Paused ]]; then
    pass "while paused, kubectl scale mpc --replicas=2 runs 2 pods (Scaling=Paused)"
else
    fail "kubectl scale mpc while paused" "deployment $(replicas), Scaling reason $(scaling_reason)"
fi
scaled_up_events() { kubectl get events -n "$NS" --field-selector involvedObject.name=orders,reason=ScaledUp -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' 2>/dev/null; }
check_contains "scaling publishes a ScaledUp Event on the MillpondConsumer with the counts and the reason" \
    "$(scaled_up_events)" "1 -> 2: "
kubectl patch mpc orders -n "$NS" --type=merge -p '{"spec":{"autoscaling":{"paused":false}}}' >/dev/null

# Production settings from Secrets: SASL_SSL with SCRAM-SHA-512 and the
# brokers' CA, and mutual TLS with a client certificate. The pods (TLS
# material mounted from the Secrets) and the operator's own Kafka client
# (same Secrets, in memory) both connect over those listeners.
kubectl create secret generic kafka-user -n "$NS" \
    --from-literal=username="$KAFKA_SCRAM_TEST_USER" --from-literal=password="$KAFKA_SCRAM_TEST_PASSWORD" >/dev/null
kubectl create secret generic kafka-wrong -n "$NS" \
    --from-literal=username="$KAFKA_SCRAM_TEST_USER" --from-literal=password=not-the-password >/dev/null
kubectl create secret generic kafka-ca -n "$NS" --from-file=ca.crt="$KAFKA_CA_FILE" >/dev/null
kubectl create secret tls kafka-client -n "$NS" --cert="$KAFKA_CLIENT_CERT_FILE" --key="$KAFKA_CLIENT_KEY_FILE" >/dev/null
other_ca_dir=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=not-the-brokers-ca \
    -keyout /dev/null -out "$other_ca_dir/ca.crt" 2>/dev/null
kubectl create secret generic other-ca -n "$NS" --from-file=ca.crt="$other_ca_dir/ca.crt" >/dev/null
rm -rf "$other_ca_dir"
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: secure
spec:
  kafka:
    bootstrapServers: "$KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    groupId: secure-$$
    sasl:
      mechanism: SCRAM-SHA-512
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
    tls:
      caSecretRef: {name: kafka-ca, key: ca.crt}
  sink: {url: "file:///sink/secure"}
  template: {$SINK_VOLUME}
  resources: {memory: 256Mi}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: mtls
spec:
  kafka:
    bootstrapServers: "$KAFKA_MTLS_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    groupId: mtls-$$
    tls:
      caSecretRef: {name: kafka-ca, key: ca.crt}
      certSecretRef: {name: kafka-client, key: tls.crt}
      keySecretRef: {name: kafka-client, key: tls.key}
  sink: {url: "file:///sink/mtls"}
  template: {$SINK_VOLUME}
  resources: {memory: 256Mi}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: wrong-password
spec:
  kafka:
    bootstrapServers: "$KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    groupId: wrong-$$
    sasl:
      mechanism: SCRAM-SHA-512
      usernameSecretRef: {name: kafka-wrong, key: username}
      passwordSecretRef: {name: kafka-wrong, key: password}
    tls:
      caSecretRef: {name: kafka-ca, key: ca.crt}
  sink: {url: "file:///out/wrong"}
  template: {$SCRATCH_VOLUME}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: wrong-ca
spec:
  kafka:
    bootstrapServers: "$KAFKA_SSL_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    groupId: wrong-ca-$$
    tls:
      caSecretRef: {name: other-ca, key: ca.crt}
  sink: {url: "file:///out/wrong-ca"}
  template: {$SCRATCH_VOLUME}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: no-secret
spec:
  kafka:
    bootstrapServers: "$KAFKA_SASL_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    sasl:
      mechanism: PLAIN
      usernameSecretRef: {name: no-such-secret, key: username}
      passwordSecretRef: {name: no-such-secret, key: password}
  sink: {url: "file:///out/no-secret"}
  template: {$SCRATCH_VOLUME}
EOF
# Every record once at the sink, and lag 0 read over the same listener.
delivered() { (($(sink_ids_of "$1") >= RECORDS)) && [[ $(lag_of "$1") == 0 ]]; }
for mpc in secure mtls; do
    if poll 180 delivered "$mpc"; then
        check "over $mpc (credentials from Secrets) the pods deliver every record once and the operator reads lag 0" \
            "$RECORDS $RECORDS" "$(sink_ids_of "$mpc") $(sink_lines_of "$mpc")"
    else
        fail "$mpc consumer" "$(sink_ids_of "$mpc") of $RECORDS records, lag $(lag_of "$mpc")" \
            "$(kubectl get mpc "$mpc" -n "$NS" -o jsonpath='{.status.conditions}')"
    fi
    check "and $mpc is not Degraded" "False" \
        "$(condition_of "$mpc" Degraded status)"
done

# Lag of a group without commits counts from where it will start: the log
# start with earliest (the default), the end of the log with latest.
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: from-earliest
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $TOPIC, groupId: earliest-$$}
  sink: {url: "file:///out/earliest"}
  template: {$SCRATCH_VOLUME}
  autoscaling: {paused: true}
  replicas: 0
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: from-latest
spec:
  kafka:
    bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    groupId: latest-$$
    config: {auto.offset.reset: latest}
  sink: {url: "file:///out/latest"}
  template: {$SCRATCH_VOLUME}
  autoscaling: {paused: true}
  replicas: 0
EOF
lags_seen() { [[ -n $(lag_of from-earliest) && -n $(lag_of from-latest) ]]; }
poll 60 lags_seen
check "a new group's lag: the whole topic with earliest, nothing with latest" \
    "$RECORDS 0" "$(lag_of from-earliest) $(lag_of from-latest)"
kubectl delete mpc from-earliest from-latest -n "$NS" >/dev/null

# Missing data or an impossible budget: Degraded with a reason, no crash loop.
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: no-topic
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: no-such-topic-$$}
  sink: {url: "file:///out/missing"}
  template: {$SCRATCH_VOLUME}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: tiny
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $TOPIC}
  sink: {url: "file:///out/tiny"}
  template: {$SCRATCH_VOLUME}
  resources: {memory: 40Mi}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: bad-override
spec:
  kafka:
    bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS"
    topic: $TOPIC
    config: {fetch.max.bytes: lots}
  sink: {url: "file:///out/bad"}
  template: {$SCRATCH_VOLUME}
---
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: no-kafka
spec:
  kafka: {bootstrapServers: "127.0.0.1:1", topic: $TOPIC}
  sink: {url: "file:///out/no-kafka"}
  template: {$SCRATCH_VOLUME}
EOF
degraded_reason() { condition_of "$1" Degraded reason; }
is_degraded() { [[ $(degraded_reason "$1") == "$2" ]]; }
if poll 60 is_degraded no-topic TopicNotFound; then
    pass "a missing topic sets Degraded=TopicNotFound"
else
    fail "missing topic reported" "reason: $(degraded_reason no-topic)"
fi
if poll 60 is_degraded tiny MemoryBudget; then
    check_contains "an impossible budget sets Degraded=MemoryBudget with the numbers" \
        "$(condition_of tiny Degraded message)" "40.0Mi"
else
    fail "impossible budget reported" "reason: $(degraded_reason tiny)"
fi
degraded_message() { condition_of "$1" Degraded message; }
if poll 60 is_degraded bad-override InvalidSpec; then
    check_contains "a librdkafka override librdkafka refuses sets Degraded=InvalidSpec naming it" \
        "$(degraded_message bad-override)" "kafka.config" "fetch.max.bytes"
else
    fail "bad librdkafka override reported" "reason: $(degraded_reason bad-override)"
fi
if poll 60 is_degraded no-kafka KafkaUnreachable; then
    check_contains "unreachable brokers set Degraded=KafkaUnreachable" "$(degraded_message no-kafka)" "127.0.0.1:1"
else
    fail "unreachable Kafka reported" "reason: $(degraded_reason no-kafka)"
fi
if poll 60 is_degraded wrong-password KafkaAuthenticationFailed; then
    check_contains "a wrong SCRAM password sets Degraded=KafkaAuthenticationFailed" \
        "$(degraded_message wrong-password)" "Kafka refused the credentials" "check the SASL mechanism, username and password"
else
    fail "wrong SCRAM password reported" "reason: $(degraded_reason wrong-password)" "$(degraded_message wrong-password)"
fi
if poll 60 is_degraded wrong-ca KafkaTLSFailed; then
    check_contains "a CA that did not sign the brokers' certificate sets Degraded=KafkaTLSFailed" \
        "$(degraded_message wrong-ca)" "TLS handshake with Kafka failed" "not signed by the trusted CA"
else
    fail "wrong CA reported" "reason: $(degraded_reason wrong-ca)" "$(degraded_message wrong-ca)"
fi
if poll 60 is_degraded no-secret SecretNotFound; then
    check_contains "a missing credentials Secret sets Degraded=SecretNotFound naming the field" \
        "$(degraded_message no-secret)" "kafka.sasl.usernameSecretRef" "no-such-secret"
else
    fail "missing Secret reported" "reason: $(degraded_reason no-secret)"
fi
check "the operator does not crash-loop on them" "0 0" \
    "$(kubectl get pods -n "$NS" -l app.kubernetes.io/name=millpond-operator -o jsonpath='{.items[*].status.containerStatuses[0].restartCount}')"
kubectl delete mpc no-topic tiny bad-override no-kafka secure mtls wrong-password wrong-ca no-secret -n "$NS" >/dev/null

# A pod that crash-loops is reported in Ready with the kubelet's reason and
# the consumer's own exit message (a record that is not JSON, and no
# dead-letter topic: the consumer stops at it, exit 3).
POISON_TOPIC="poison-$$"
target/release/millpond-loadgen --topic "$POISON_TOPIC" --create-partitions 1 --records 10 --size 100 >/dev/null
echo "not json" | kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$POISON_TOPIC" -p 0
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: poisoned
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $POISON_TOPIC}
  sink: {url: "file:///out/poisoned"}
  template: {$SCRATCH_VOLUME}
  autoscaling: {paused: true}
  replicas: 1
EOF
crash_looping() { [[ $(condition_of poisoned Ready reason) == CrashLoopBackOff ]]; }
if poll 150 crash_looping; then
    check_contains "a crash-looping pod sets Ready=False with CrashLoopBackOff and the consumer's exit message" \
        "$(condition_of poisoned Ready message)" "exit code 3" "poison record at $POISON_TOPIC/0@10: value is not a JSON object"
else
    fail "crash loop reported" "Ready reason: $(condition_of poisoned Ready reason)" "$(condition_of poisoned Ready message)"
fi
check "and Ready is False" "False" \
    "$(condition_of poisoned Ready status)"
kubectl delete mpc poisoned -n "$NS" >/dev/null
e2e/stack topic delete "$POISON_TOPIC" >/dev/null 2>&1

# A file sink must write onto a volume: the pods' root is read-only.
kubectl apply -n "$NS" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata:
  name: no-volume
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $TOPIC}
  sink: {url: "file:///data/orders"}
EOF
if poll 60 is_degraded no-volume SinkNotOnVolume; then
    check_contains "a file:// sink off every volume sets Degraded=SinkNotOnVolume naming the path" \
        "$(degraded_message no-volume)" "file:///data/orders" "spec.template.volumes"
    check "and no pod runs for it" "" "$(kubectl get pods -n "$NS" -l app.kubernetes.io/instance=no-volume -o name 2>&1)"
else
    fail "a file sink off every volume is refused" "reason: $(degraded_reason no-volume)" "$(degraded_message no-volume)"
fi
kubectl delete mpc no-volume -n "$NS" >/dev/null

# A ready pod whose metrics cannot be read (its process is paused, so it
# stays ready until its readiness probe fails twice): Degraded names it.
consumer_pid=$(container_pid "$(kubectl get pods -n "$NS" -l app.kubernetes.io/instance=orders \
    -o jsonpath='{.items[0].status.containerStatuses[0].containerID}')")
kill -STOP "$consumer_pid"
if poll 30 is_degraded orders MetricsUnavailable; then
    check_contains "a ready pod whose metrics cannot be read sets Degraded=MetricsUnavailable naming it" \
        "$(degraded_message orders)" "cannot read the metrics of ready pods" "orders-"
else
    fail "unreadable pod metrics reported" "reason: $(degraded_reason orders)" "$(degraded_message orders)"
fi
kill -CONT "$consumer_pid"
consumer_pid=

# Kafka stops answering while a consumer runs (the broker is paused): the
# operator keeps the replicas, says why, and recovers when Kafka does.
kafka=$(kafka_pid)
replicas_before=$(replicas)
kill -STOP "$kafka"
if poll 60 is_degraded orders KafkaUnreachable; then
    check "Kafka paused while running: Degraded=KafkaUnreachable, the replicas kept" "$replicas_before" "$(replicas)"
else
    fail "Kafka paused while running is reported" "reason: $(degraded_reason orders)"
fi
kill -CONT "$kafka"
not_degraded() { [[ $(condition_of orders Degraded status) == False ]]; }
poll 90 not_degraded && pass "Kafka back: Degraded clears" \
    || fail "recovery after Kafka returns" "$(degraded_message orders)"

# Deleting the MillpondConsumer removes everything it owned, and the
# operator forgets it (its metric series go).
leader_metrics() {
    local ip
    ip=$(kubectl get pod "$(leader)" -n "$NS" -o jsonpath='{.status.podIP}' 2>/dev/null)
    [[ -n $ip ]] && curl -s --max-time 5 "http://$ip:8080/metrics"
}
orders_series() { leader_metrics | grep -c "^millpond_operator_desired_replicas{name=\"orders\",namespace=\"$NS\"}"; }
check "the leader exports the consumer's desired replicas" "1" "$(orders_series)"
kubectl delete mpc orders -n "$NS" >/dev/null
if poll 90 gone deployment/orders && poll 30 gone configmap/orders-limits && poll 30 gone service/orders-metrics \
    && poll 30 gone pdb/orders && poll 30 gone secret/orders-admin; then
    pass "deleting the MillpondConsumer removes its Deployment, ConfigMap, Service, PDB and Secret"
else
    fail "garbage collection of owned objects" "$(kubectl get all,cm,secret,pdb -n "$NS" 2>&1)"
fi
no_consumer_pods() { [[ -z $(kubectl get pods -n "$NS" -l app.kubernetes.io/name=millpond-consumer -o name 2>/dev/null) ]]; }
poll 90 no_consumer_pods && pass "and its pods stop" || fail "consumer pods stop" "$(kubectl get pods -n "$NS" 2>&1)"
series_gone() { [[ $(orders_series) == 0 ]]; }
poll 60 series_gone && pass "and the operator drops its metric series" \
    || fail "metric series of a deleted consumer" "$(leader_metrics | grep desired_replicas)"

# ------------------------------------------------------ watchNamespaces --

# The cluster-wide release goes; the chart is installed again in a
# namespace of its own, watching A and C (two, so the merged watches of
# several namespaces run), with Roles there only. A consumer in each of A, B
# and C: the operator decides for A's and C's and never looks at B's.
helm uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
for ns in "$WATCHED_A" "$WATCHED_C" "$UNWATCHED"; do
    kubectl create namespace "$ns" >/dev/null
done
install_operator "$SCOPED_OPS" "$RELEASE" 3 --set "watchNamespaces={$WATCHED_A,$WATCHED_C}"
for ns in "$WATCHED_A" "$UNWATCHED" "$WATCHED_C"; do
    # Paused at 0 replicas: the objects and the decision, no pods.
    kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: millpond.io/v1alpha1
kind: MillpondConsumer
metadata: {name: scoped}
spec:
  kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP_SERVERS", topic: $TOPIC}
  sink: {url: "http://127.0.0.1:9/in"}
  autoscaling: {paused: true}
  replicas: 0
EOF
done
scoped_metrics() {
    local ip
    ip=$(kubectl get pod "$(operator_leader "$SCOPED_OPS" "$RELEASE")" -n "$SCOPED_OPS" -o jsonpath='{.status.podIP}' 2>/dev/null)
    [[ -n $ip ]] && curl -s --max-time 5 "http://$ip:8080/metrics"
}
# The namespaces the namespace-scoped operator decided for, sorted.
scoped_decided() {
    scoped_metrics | sed -n 's/^millpond_operator_desired_replicas{name="scoped",namespace="\([^"]*\)"}.*/\1/p' | sort | tr '\n' ' '
}
both_decided() { [[ $(scoped_decided) == "$WATCHED_A $WATCHED_C " ]]; }
has_deployment() { kubectl get deployment scoped -n "$1" >/dev/null 2>&1; }
if poll 60 has_deployment "$WATCHED_A" && poll 30 has_deployment "$WATCHED_C" && poll 30 both_decided; then
    pass "installed with watchNamespaces, the operator runs the consumers of both watched namespaces (their Deployments appear)"
else
    fail "the namespace-scoped operator runs the watched namespaces' consumers" \
        "decided for: $(scoped_decided)" "$(kubectl get deployment -A -l app.kubernetes.io/instance=scoped 2>&1)"
fi
sleep 9 # three more intervals
check "and leaves the other namespace's consumer alone (it decides for the watched ones only)" \
    "$WATCHED_A $WATCHED_C " "$(scoped_decided)"
others=$(kubectl get deployment -A -l app.kubernetes.io/name=millpond-operator --no-headers 2>/dev/null | awk -v ns="$SCOPED_OPS" '$1 != ns { print $1 "/" $2 }')
if [[ -z $others ]]; then
    check "no Deployment, no status for the other namespace's consumer" \
        "absent " "$(has_deployment "$UNWATCHED" && echo present || echo absent) $(kubectl get mpc scoped -n "$UNWATCHED" -o jsonpath='{.status.observedGeneration}')"
else
    printf 'skip  the other namespace'"'"'s consumer has no Deployment (another operator runs: %s)\n' "$others"
fi
scoped_errors=$(kubectl logs -n "$SCOPED_OPS" -l app.kubernetes.io/instance="$RELEASE" --tail=-1 2>&1 | grep -iE 'forbidden|"level":"(ERROR|WARN)"')
check "the namespace-scoped operator logs no refusal (its Roles cover what it watches)" "" "$scoped_errors"

finish
