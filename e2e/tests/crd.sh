#!/usr/bin/env bash
# e2e/tests/crd.sh: the MillpondConsumer CRD against the real Kubernetes API
# server of the local stack.
#
#   e2e/stack up k8s && e2e/tests/crd.sh
#
# Starts nothing: it uses the running control plane (KUBECONFIG from
# `e2e/stack env`), installs the CRD from crds/ (left installed, like a user
# would), and works in a namespace of its own that it deletes at the end.
#
# Proves that the API server accepts the generated CRD and that, through it:
# `kubectl explain` shows the field docs; defaults are filled in; invalid
# consumers are refused with a message naming the field; sizes may be
# numbers as well as strings; `kubectl get`
# prints the columns; `kubectl scale` works through the scale subresource.
#
# Prints one line per check and `N passed, M failed` last; exits non-zero
# when a check failed.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_stack

NS="millpond-crd-test-$$"
CRD=millpondconsumers.millpond.io

cleanup() {
    kubectl delete namespace "$NS" --wait=false --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT

# consumer NAME: a MillpondConsumer manifest whose spec is read from stdin
# (indented by two spaces).
consumer() {
    printf 'apiVersion: millpond.io/v1alpha1\nkind: MillpondConsumer\nmetadata:\n  name: %s\nspec:\n' "$1"
    cat
}

# object_name TEXT -> TEXT as a valid object name ("a negative flushBytes" ->
# "a-negative-flushbytes").
object_name() {
    printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | cut -c1-60 | sed 's/^-*//; s/-*$//'
}

# refused WHAT FRAGMENT... : creating the consumer whose spec is on stdin
# (with `kubectl $VERB`, create unless VERB is set) fails, and the API
# server's answer contains every fragment.
refused() {
    local what=$1 name out
    name=$(object_name "$1")
    shift
    if out=$(consumer "$name" | kubectl "${VERB:-create}" --validate=strict -n "$NS" -f - 2>&1); then
        fail "refuses $what" "the API server accepted it: $out"
        kubectl delete -n "$NS" mpc "$name" --wait=false >/dev/null 2>&1
        return
    fi
    if [[ $out == *metadata.name* ]]; then
        fail "refuses $what" "the object name is invalid, not the spec: $out"
        return
    fi
    check_contains "refuses $what" "$out" "$@"
}

# accepted NAME : creating the consumer whose spec is on stdin (with
# `kubectl $VERB`, create unless VERB is set) succeeds.
accepted() {
    local out
    if out=$(consumer "$1" | kubectl "${VERB:-create}" --validate=strict -n "$NS" -f - 2>&1); then
        pass "accepts $1"
    else
        fail "accepts $1" "$out"
    fi
}

# ------------------------------------------------------------ the CRD --

if out=$(kubectl apply -f crds/ 2>&1); then
    pass "kubectl apply -f crds/ is accepted"
else
    fail "kubectl apply -f crds/ is accepted" "$out"
fi

if out=$(kubectl wait --for=condition=Established "crd/$CRD" --timeout=60s 2>&1); then
    pass "the CRD becomes Established"
else
    fail "the CRD becomes Established" "$out"
fi

check "the CRD is namespaced with short name mpc and category millpond" \
    "Namespaced mpc millpond" \
    "$(kubectl get crd "$CRD" -o jsonpath='{.spec.scope} {.spec.names.shortNames[0]} {.spec.names.categories[0]}')"

# kubectl explain reads the OpenAPI document, which the API server publishes
# shortly after the CRD is established.
explain() {
    local out
    for _ in $(seq 1 30); do
        if out=$(kubectl explain "$1" 2>&1); then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 1
    done
    printf '%s\n' "$out"
    return 1
}

check_contains "kubectl explain mpc.spec shows the spec's description and fields" \
    "$(explain mpc.spec)" \
    "Consume one Kafka topic into a sink" "kafka	<Object> -required-" "autoscaling	<Object>" "replicas	<integer>"
check_contains "kubectl explain shows the default consumer group" \
    "$(explain mpc.spec.kafka.groupId)" "Defaults to" "millpond-<topic>"
check_contains "kubectl explain shows that at-least-once breakers are refused" \
    "$(explain mpc.spec.kafka.config)" "enable.auto.commit=true" "are refused"
check_contains "kubectl explain shows the memory budget, as a string or a number" \
    "$(explain mpc.spec.resources.memory)" "Memory budget of one pod" "memory limit" "1e9 unquoted in YAML"
check_contains "kubectl explain shows that a file sink writes onto a volume" \
    "$(explain mpc.spec.template.volumes)" "mountPath" "persistentVolumeClaim" "emptyDir" "read-only"
check_contains "kubectl explain shows the scaling bounds" \
    "$(explain mpc.spec.autoscaling)" "minReplicas" "maxReplicas" "targetDrainSeconds" "How the operator chooses the number of pods"

# ----------------------------------------------------- valid consumers --

kubectl create namespace "$NS" >/dev/null

if out=$(kubectl apply -n "$NS" -f examples/millpondconsumer.yaml 2>&1); then
    pass "the example is accepted"
else
    fail "the example is accepted" "$out"
fi

if out=$(kubectl apply -n "$NS" -f examples/s3-parquet.yaml 2>&1); then
    pass "the object storage example is accepted"
else
    fail "the object storage example is accepted" "$out"
fi

if out=$(kubectl apply -n "$NS" -f examples/iceberg-rest.yaml 2>&1); then
    pass "the Iceberg example is accepted"
else
    fail "the Iceberg example is accepted" "$out"
fi

if out=$(kubectl apply -n "$NS" -f examples/iceberg-sql.yaml 2>&1); then
    pass "the Iceberg SQL catalog example is accepted"
else
    fail "the Iceberg SQL catalog example is accepted" "$out"
fi

check "the API server fills defaults the example leaves out" \
    "4 1 300 1000 true 3" \
    "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.spec.autoscaling.maxScaleUpStep} {.spec.autoscaling.maxScaleDownStep} {.spec.autoscaling.scaleDownStabilizationSeconds} {.spec.limits.consumeBatchSize} {.spec.autotune.enabled} {.spec.autoscaling.stuckIntervals}')"

accepted minimal <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
  sink:
    url: http://ingest.example.com/orders
EOF

check "a minimal consumer gets every default" \
    "256Mi ndjson false 5000 4 1000 1 12 300 0 false true" \
    "$(kubectl get mpc minimal -n "$NS" -o jsonpath='{.spec.resources.memory} {.spec.sink.format} {.spec.sink.metadata} {.spec.limits.flushIntervalMs} {.spec.limits.maxInFlight} {.spec.limits.consumeBatchSize} {.spec.autoscaling.minReplicas} {.spec.autoscaling.maxReplicas} {.spec.autoscaling.targetDrainSeconds} {.spec.autoscaling.scaleUpStabilizationSeconds} {.spec.autoscaling.paused} {.spec.autotune.enabled}')"

check "groupId stays unset (the operator uses millpond-<topic>)" \
    "" "$(kubectl get mpc minimal -n "$NS" -o jsonpath='{.spec.kafka.groupId}')"

accepted s3-parquet <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: s3://lake-1/raw/orders
    format: parquet
    s3:
      region: eu-west-1
      endpoint: http://store.storage:9000
      accessKeyIdSecretRef: {name: lake, key: id}
      secretAccessKeySecretRef: {name: lake, key: secret}
      sessionTokenSecretRef: {name: lake, key: token}
EOF

accepted iceberg-rest <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: iceberg://analytics.raw/orders
    iceberg:
      catalogUri: https://catalog.example.com/api/catalog
      warehouse: lake
      credentialSecretRef: {name: catalog, key: credential}
      scope: PRINCIPAL_ROLE:ALL
    s3: {region: eu-west-1}
EOF

accepted secured <<'EOF'
  kafka:
    bootstrapServers: kafka:9093
    topic: payments.v1
    groupId: payments-archive
    config:
      enable.auto.commit: "false"
      enable.auto.offset.store: "False"
      auto.offset.reset: earliest
    sasl:
      mechanism: SCRAM-SHA-512
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
    tls:
      caSecretRef: {name: kafka-ca, key: ca.crt}
  sink:
    url: https://ingest.example.com/payments
    deadLetterTopic: payments.dlq
    http: {timeoutMs: 10000}
  resources: {memory: 1Gi, cpu: 2}
  limits: {flushBytes: 16Mi, maxInFlight: 8}
  autotune: {minFlushBytes: 4Mi, maxFlushBytes: 64Mi, minInFlight: 2, maxInFlight: 16}
  template:
    image: registry.example.com/millpond-consumer:dev
    imagePullPolicy: IfNotPresent
    labels: {team: payments}
    tolerations: [{key: dedicated, operator: Equal, value: kafka, effect: NoSchedule}]
    env: [{name: RUST_LOG, value: debug}]
EOF

refused "a negative giveUpAfterSeconds" \
    'spec.sink.giveUpAfterSeconds: Invalid value: -1: spec.sink.giveUpAfterSeconds in body should be greater than or equal to 0' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "http://ingest.example.com/orders", giveUpAfterSeconds: -1}
EOF

# Quantities may be numbers, as Kubernetes' own are: unquoted in YAML (1e9
# reaches the API server as the integer 1000000000).
VERB=apply accepted sizes-as-numbers <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "http://ingest.example.com/orders"}
  resources: {memory: 1e9, cpu: 2}
  limits: {flushBytes: 8388608}
  autotune: {minFlushBytes: 1048576, maxFlushBytes: 33554432}
EOF

check "sizes written as numbers read back as numbers" \
    "1000000000 2 8388608 1048576 33554432" \
    "$(kubectl get mpc sizes-as-numbers -n "$NS" -o jsonpath='{.spec.resources.memory} {.spec.resources.cpu} {.spec.limits.flushBytes} {.spec.autotune.minFlushBytes} {.spec.autotune.maxFlushBytes}')"

# --------------------------------------------------- invalid consumers --

refused "a string where an integer belongs" \
    'spec.autoscaling.maxReplicas: Invalid value: "string": spec.autoscaling.maxReplicas in body must be of type integer' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  autoscaling: {maxReplicas: many}
EOF

refused "minReplicas above maxReplicas" \
    'spec.autoscaling.minReplicas: Invalid value: "object": autoscaling.minReplicas must not exceed maxReplicas' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  autoscaling: {minReplicas: 5, maxReplicas: 2}
EOF

refused "a negative memory budget" \
    'spec.resources.memory: Invalid value: "": resources.memory must be a positive whole number of bytes, such as 256Mi' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  resources: {memory: -1Gi}
EOF

refused "a memory budget in thousandths of a byte (256m)" \
    'spec.resources.memory: Invalid value: "": resources.memory must be a positive whole number of bytes' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  resources: {memory: 256m}
EOF

VERB=apply refused "a memory budget of 0 written as a number (kubectl apply)" \
    'spec.resources.memory: Invalid value: "": resources.memory must be a positive whole number of bytes, such as 256Mi' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  resources: {memory: 0}
EOF

VERB=apply refused "a fraction of a byte written as a number (kubectl apply)" \
    'spec.limits.flushBytes: Invalid value: "number": spec.limits.flushBytes in body must be of type integer,string: "number"' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {flushBytes: 1.5}
EOF

VERB=apply refused "autotune flush bounds written as numbers in the wrong order (kubectl apply)" \
    'spec.autotune.minFlushBytes: Invalid value: "object": autotune.minFlushBytes must not exceed maxFlushBytes' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  autotune: {minFlushBytes: 67108864, maxFlushBytes: 1Mi}
EOF

refused "a negative flushBytes" \
    'spec.limits.flushBytes: Invalid value: "": limits.flushBytes must be a positive whole number of bytes, such as 8Mi' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {flushBytes: -8Mi}
EOF

refused "a missing topic" \
    'spec.kafka.topic: Required value' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092"}
  sink: {url: "file:///data"}
EOF

refused "an empty topic" \
    'spec.kafka.topic: Invalid value: "": spec.kafka.topic in body should be at least 1 chars long' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: ""}
  sink: {url: "file:///data"}
EOF

refused "a topic name Kafka does not allow" \
    "spec.kafka.topic: Invalid value: \"orders/v1\": spec.kafka.topic in body should match '^[a-zA-Z0-9._-]{1,249}\$'" <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: "orders/v1"}
  sink: {url: "file:///data"}
EOF

refused "an unknown sink scheme" \
    'spec.sink.url: Invalid value: "string": sink.url must be file://dir, http(s)://host/path, s3://bucket/prefix (bucket names are 3-63 lower-case letters, digits, dots and hyphens) or iceberg://namespace/table' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "ftp://host/orders"}
EOF

refused "an s3 bucket name S3 does not allow" \
    'spec.sink.url: Invalid value: "string": sink.url must be file://dir, http(s)://host/path, s3://bucket/prefix (bucket names are 3-63' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "s3://Orders_Lake/raw"}
EOF

refused "s3 settings on an http sink" \
    'spec.sink: Invalid value: "object": sink.s3 applies to an s3:// or iceberg:// sink.url only' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "http://ingest:8080/orders", s3: {region: eu-west-1}}
EOF

refused "an s3 access key without its secret" \
    'spec.sink.s3: Invalid value: "object": s3.accessKeyIdSecretRef and s3.secretAccessKeySecretRef go together' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: s3://lake/orders
    s3: {accessKeyIdSecretRef: {name: lake, key: id}}
EOF

refused "an s3 endpoint without a scheme" \
    'spec.sink.s3.endpoint: Invalid value: "string": s3.endpoint must be an http:// or https:// URL' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "s3://lake/orders", s3: {endpoint: "store:9000"}}
EOF

refused "an iceberg sink without its catalog" \
    'spec.sink: Invalid value: "object": an iceberg:// sink.url needs sink.iceberg (its catalog), and sink.iceberg applies to it only' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "iceberg://analytics/orders"}
EOF

refused "an iceberg url without a table" \
    'spec.sink.url: Invalid value: "string": sink.url must be file://dir' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "iceberg://analytics", iceberg: {catalogUri: "http://catalog:8181"}}
EOF

refused "an iceberg catalog with both a token and client credentials" \
    'spec.sink.iceberg: Invalid value: "object": iceberg.tokenSecretRef and iceberg.credentialSecretRef are alternatives: set one' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: iceberg://analytics/orders
    iceberg:
      catalogUri: http://catalog:8181
      tokenSecretRef: {name: catalog, key: token}
      credentialSecretRef: {name: catalog, key: credential}
EOF

refused "an iceberg sink with both a REST and a SQL catalog" \
    'spec.sink.iceberg: Invalid value: "object": sink.iceberg needs one catalog: catalogUri (REST) or sqlUriSecretRef (SQL)' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: iceberg://analytics/orders
    iceberg:
      catalogUri: http://catalog:8181
      sqlUriSecretRef: {name: catalog-db, key: uri}
EOF

refused "an iceberg sink with neither catalog" \
    'spec.sink.iceberg: Invalid value: "object": sink.iceberg needs one catalog: catalogUri (REST) or sqlUriSecretRef (SQL)' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "iceberg://analytics/orders", iceberg: {warehouse: lake}}
EOF

refused "a SQL catalog with REST credentials" \
    'spec.sink.iceberg: Invalid value: "object": iceberg.tokenSecretRef, credentialSecretRef, scope and oauth2ServerUri apply to a REST catalog (catalogUri) only' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: iceberg://analytics/orders
    iceberg:
      sqlUriSecretRef: {name: catalog-db, key: uri}
      tokenSecretRef: {name: catalog, key: token}
EOF

refused "a commit interval over an hour" \
    'spec.sink.iceberg.commitIntervalSeconds: Invalid value: 3601: spec.sink.iceberg.commitIntervalSeconds in body should be less than or equal to 3600' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink:
    url: iceberg://analytics/orders
    iceberg: {catalogUri: "http://catalog:8181", commitIntervalSeconds: 3601}
EOF

refused "an unknown sink format" \
    'spec.sink.format: Unsupported value: "csv": supported values: "ndjson", "parquet"' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data", format: csv}
EOF

refused "parquet to an http sink" \
    'spec.sink.format: Invalid value: "object": sink.format parquet needs a file:// or s3:// sink' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "http://ingest:8080/orders", format: parquet}
EOF

refused "a volume with two sources" \
    'a volume needs exactly one source, emptyDir or persistentVolumeClaim' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  template:
    volumes: [{name: data, mountPath: /data, emptyDir: {}, persistentVolumeClaim: {claimName: data}}]
EOF

refused "a relative mountPath" \
    'mountPath must be an absolute path other than /, such as /data' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  template:
    volumes: [{name: data, mountPath: data, emptyDir: {}}]
EOF

refused "an emptyDir in memory" \
    'emptyDir.medium Memory is refused' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  template:
    volumes: [{name: data, mountPath: /data, emptyDir: {medium: Memory}}]
EOF

refused "maxInFlight 0" \
    'spec.limits.maxInFlight: Invalid value: 0: spec.limits.maxInFlight in body should be greater than or equal to 1' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {maxInFlight: 0}
EOF

refused "consumeBatchSize below 10" \
    'spec.limits.consumeBatchSize: Invalid value: 5: spec.limits.consumeBatchSize in body should be greater than or equal to 10' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {consumeBatchSize: 5}
EOF

refused "negative replicas" \
    'spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  replicas: -1
EOF

refused "autotune flush bounds in the wrong order" \
    'spec.autotune.minFlushBytes: Invalid value: "object": autotune.minFlushBytes must not exceed maxFlushBytes' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  autotune: {minFlushBytes: 64Mi, maxFlushBytes: 1Mi}
EOF

refused "autotune in-flight bounds in the wrong order" \
    'spec.autotune.minInFlight: Invalid value: "object": autotune.minInFlight must not exceed maxInFlight' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  autotune: {minInFlight: 9, maxInFlight: 8}
  limits: {maxInFlight: 8}
EOF

refused "limits.maxInFlight outside the autotune bounds" \
    'spec.limits.maxInFlight: Invalid value: "object": limits.maxInFlight must lie within autotune.minInFlight and autotune.maxInFlight' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {maxInFlight: 16}
  autotune: {maxInFlight: 8}
EOF

refused "limits.flushBytes outside the autotune bounds" \
    'spec.limits.flushBytes: Invalid value: "object": limits.flushBytes must lie within autotune.minFlushBytes and autotune.maxFlushBytes' <<'EOF'
  kafka: {bootstrapServers: "kafka:9092", topic: orders}
  sink: {url: "file:///data"}
  limits: {flushBytes: 128Mi}
  autotune: {maxFlushBytes: 32Mi}
EOF

refused "enable.auto.commit=true (breaks at-least-once)" \
    'spec.kafka.config: Invalid value: "object": kafka.config may set enable.auto.commit=false' 'only to these values (at-least-once delivery)' <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
    config: {enable.auto.commit: "true"}
  sink: {url: "file:///data"}
EOF

refused "a SASL password in kafka.config" \
    'spec.kafka.config: Invalid value: "object": kafka.config may set' 'must not set enable.partition.eof, group.id, bootstrap.servers, metadata.broker.list, sasl.username, sasl.password' <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
    config: {sasl.password: hunter2}
  sink: {url: "file:///data"}
EOF

refused "a SASL password as a plain field (strict field validation)" \
    'unknown field "spec.kafka.sasl.password"' <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
    sasl:
      mechanism: PLAIN
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
      password: hunter2
  sink: {url: "file:///data"}
EOF

refused "an unknown SASL mechanism" \
    'spec.kafka.sasl.mechanism: Unsupported value: "GSSAPI": supported values: "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"' <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
    sasl:
      mechanism: GSSAPI
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
  sink: {url: "file:///data"}
EOF

refused "security.protocol in kafka.config next to kafka.sasl" \
    'spec.kafka.config: Invalid value: "object": kafka.config must not set security.protocol' 'when kafka.sasl or kafka.tls is used' <<'EOF'
  kafka:
    bootstrapServers: kafka:9092
    topic: orders
    config: {security.protocol: SASL_SSL}
    sasl:
      mechanism: PLAIN
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
  sink: {url: "file:///data"}
EOF

refused "a client certificate without its key" \
    'spec.kafka.tls: Invalid value: "object": kafka.tls.certSecretRef and kafka.tls.keySecretRef go together' <<'EOF'
  kafka:
    bootstrapServers: kafka:9093
    topic: orders
    tls:
      certSecretRef: {name: kafka-client, key: tls.crt}
  sink: {url: "file:///data"}
EOF

# -------------------------------------------- printer columns, status --

header=$(kubectl get mpc -n "$NS" 2>&1 | head -n 1 | tr -s ' ')
check "kubectl get mpc prints the columns" "NAME REPLICAS READY LAG FULLNESS LIMITED STATUS AGE" "$header"

status='{"status":{"replicas":3,"readyReplicas":2,"selector":"app.kubernetes.io/instance=orders","partitions":12,
  "lag":{"total":1234,"maxPartition":400,"ratePerSecond":-12.5},"bufferFullness":0.42,"limitedBy":"SinkBound",
  "limits":{"flushBytes":8388608,"flushIntervalMs":5000,"maxInFlight":4,"consumeBatchSize":1000,"generation":2},
  "stuckPartitions":[3],
  "lastDecision":{"time":"2026-01-01T00:00:00Z","direction":"up","from":1,"to":3,"reason":"lag 1234 drains in 300s with 3 pods"},
  "observedGeneration":1,
  "conditions":[{"type":"Ready","status":"False","reason":"PodsNotReady","message":"2 of 3 pods ready","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}'
if out=$(kubectl patch mpc orders -n "$NS" --subresource=status --type=merge -p "$status" 2>&1); then
    pass "a full status is accepted through the status subresource"
else
    fail "a full status is accepted through the status subresource" "$out"
fi

row=$(kubectl get mpc orders -n "$NS" --no-headers 2>&1 | tr -s ' ' | cut -d' ' -f1-7)
check "kubectl get mpc shows replicas, ready, lag, fullness, where pods are limited and the Ready reason" \
    "orders 3 2 1234 0.42 SinkBound PodsNotReady" "$row"

check "kubectl get millpond lists consumers by category" \
    "$(kubectl get mpc -n "$NS" -o name | sort)" "$(kubectl get millpond -n "$NS" -o name | sort)"

# ------------------------------------------------------- scale --

# Spec and status differ (5 asked, 3 running), so each is told apart.
if out=$(kubectl scale -n "$NS" mpc/orders --replicas=5 2>&1); then
    pass "kubectl scale mpc/orders --replicas=5 is accepted"
else
    fail "kubectl scale mpc/orders --replicas=5 is accepted" "$out"
fi
check "kubectl scale sets .spec.replicas" "5" \
    "$(kubectl get mpc orders -n "$NS" -o jsonpath='{.spec.replicas}')"

scale=$(kubectl get --raw "/apis/millpond.io/v1alpha1/namespaces/$NS/millpondconsumers/orders/scale" 2>&1)
check "the scale subresource reports spec replicas, status replicas and the selector" \
    "5 3 app.kubernetes.io/instance=orders" \
    "$(jq -r '"\(.spec.replicas) \(.status.replicas) \(.status.selector)"' <<<"$scale" 2>&1)"

if out=$(kubectl scale -n "$NS" mpc/minimal --replicas=-1 2>&1); then
    fail "kubectl scale refuses negative replicas" "accepted: $out"
else
    pass "kubectl scale refuses negative replicas"
fi

finish
