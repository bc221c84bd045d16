//! Kafka: the topic, librdkafka settings that would break at-least-once
//! delivery, and credentials, which only come from Secrets.

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

/// SASL credentials from the Secret `kafka-user`, with `mechanism`.
fn sasl(mechanism: &str) -> Value {
    json!({
        "mechanism": mechanism,
        "usernameSecretRef": {"name": "kafka-user", "key": "username"},
        "passwordSecretRef": {"name": "kafka-user", "key": "password"},
    })
}

/// The API server's refusal of kafka.config settings that break
/// at-least-once delivery or that have a field (or a Secret) of their own.
const CONFIG_REFUSED: &str = "spec.kafka.config: Invalid value: \"object\": kafka.config may set";

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_consumer_with_credentials_from_secrets_and_every_production_setting_is_accepted() {
    let s = Scenario::without_operator("secured").await;
    accepted(
        &s,
        "secured",
        json!({
            "kafka": {
                "bootstrapServers": "kafka:9093",
                "topic": "payments.v1",
                "groupId": "payments-archive",
                "config": {
                    "enable.auto.commit": "false",
                    "enable.auto.offset.store": "False",
                    "auto.offset.reset": "earliest",
                },
                "sasl": sasl("SCRAM-SHA-512"),
                "tls": {"caSecretRef": {"name": "kafka-ca", "key": "ca.crt"}},
            },
            "sink": {
                "url": "https://ingest.example.com/payments",
                "deadLetterTopic": "payments.dlq",
                "http": {"timeoutMs": 10000},
            },
            "resources": {"memory": "1Gi", "cpu": 2},
            "limits": {"flushBytes": "16Mi", "maxInFlight": 8},
            "autotune": {
                "minFlushBytes": "4Mi",
                "maxFlushBytes": "64Mi",
                "minInFlight": 2,
                "maxInFlight": 16,
            },
            "template": {
                "image": "registry.example.com/millpond-consumer:dev",
                "imagePullPolicy": "IfNotPresent",
                "labels": {"team": "payments"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}
                ],
                "env": [{"name": "RUST_LOG", "value": "debug"}],
            },
        }),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_missing_topic_is_refused() {
    let s = Scenario::without_operator("no-topic").await;
    refused(
        &s,
        json!({"kafka": {"bootstrapServers": "kafka:9092"}, "sink": {"url": "file:///data"}}),
        &["spec.kafka.topic: Required value"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_empty_topic_is_refused() {
    let s = Scenario::without_operator("empty-topic").await;
    refused(
        &s,
        json!({
            "kafka": {"bootstrapServers": "kafka:9092", "topic": ""},
            "sink": {"url": "file:///data"},
        }),
        &["spec.kafka.topic: Invalid value: \"\": spec.kafka.topic in body should be at least 1 chars long"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_topic_name_kafka_does_not_allow_is_refused() {
    let s = Scenario::without_operator("topic-name").await;
    refused(
        &s,
        json!({
            "kafka": {"bootstrapServers": "kafka:9092", "topic": "orders/v1"},
            "sink": {"url": "file:///data"},
        }),
        &["spec.kafka.topic: Invalid value: \"orders/v1\": spec.kafka.topic in body should match '^[a-zA-Z0-9._-]{1,249}$'"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn enable_auto_commit_true_is_refused_as_it_breaks_at_least_once() {
    let s = Scenario::without_operator("auto-commit").await;
    refused(
        &s,
        json!({
            "kafka": {
                "bootstrapServers": "kafka:9092",
                "topic": "orders",
                "config": {"enable.auto.commit": "true"},
            },
            "sink": {"url": "file:///data"},
        }),
        &[
            CONFIG_REFUSED,
            "kafka.config may set enable.auto.commit=false",
            "only to these values (at-least-once delivery)",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_sasl_password_in_kafka_config_is_refused() {
    let s = Scenario::without_operator("config-password").await;
    refused(
        &s,
        json!({
            "kafka": {
                "bootstrapServers": "kafka:9092",
                "topic": "orders",
                "config": {"sasl.password": "hunter2"},
            },
            "sink": {"url": "file:///data"},
        }),
        &[
            CONFIG_REFUSED,
            "must not set enable.partition.eof, group.id, bootstrap.servers, metadata.broker.list, sasl.username, sasl.password",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_sasl_password_as_a_plain_field_is_refused_by_strict_field_validation() {
    let s = Scenario::without_operator("sasl-password").await;
    let mut credentials = sasl("PLAIN");
    credentials["password"] = json!("hunter2");
    refused(
        &s,
        json!({
            "kafka": {"bootstrapServers": "kafka:9092", "topic": "orders", "sasl": credentials},
            "sink": {"url": "file:///data"},
        }),
        &["unknown field \"spec.kafka.sasl.password\""],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_unknown_sasl_mechanism_is_refused() {
    let s = Scenario::without_operator("gssapi").await;
    refused(
        &s,
        json!({
            "kafka": {"bootstrapServers": "kafka:9092", "topic": "orders", "sasl": sasl("GSSAPI")},
            "sink": {"url": "file:///data"},
        }),
        &["spec.kafka.sasl.mechanism: Unsupported value: \"GSSAPI\": supported values: \"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\""],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn security_protocol_in_kafka_config_next_to_kafka_sasl_is_refused() {
    let s = Scenario::without_operator("security-protocol").await;
    refused(
        &s,
        json!({
            "kafka": {
                "bootstrapServers": "kafka:9092",
                "topic": "orders",
                "config": {"security.protocol": "SASL_SSL"},
                "sasl": sasl("PLAIN"),
            },
            "sink": {"url": "file:///data"},
        }),
        &[
            "spec.kafka.config: Invalid value: \"object\": kafka.config must not set security.protocol",
            "when kafka.sasl or kafka.tls is used",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_client_certificate_without_its_key_is_refused() {
    let s = Scenario::without_operator("cert-no-key").await;
    refused(
        &s,
        json!({
            "kafka": {
                "bootstrapServers": "kafka:9093",
                "topic": "orders",
                "tls": {"certSecretRef": {"name": "kafka-client", "key": "tls.crt"}},
            },
            "sink": {"url": "file:///data"},
        }),
        &["spec.kafka.tls: Invalid value: \"object\": kafka.tls.certSecretRef and kafka.tls.keySecretRef go together"],
    )
    .await;
}
