//! Every `Degraded` reason, each with the message a person acts on, and
//! the operator not crash-looping on any of them.

use std::time::Duration;

use millpond_testkit::{kafka, tls};
use serde_json::{json, Value};

use crate::credentials::ca_secret;
use crate::support::*;

/// A consumer whose pods never need to deliver: `kafka` merged over
/// plaintext brokers and `topic`, `extra` over the rest of the spec.
fn spec(topic: &str, kafka: Value, extra: Value) -> Value {
    let mut k = json!({"bootstrapServers": kafka::bootstrap(), "topic": topic});
    merge(&mut k, kafka);
    let mut spec = json!({
        "kafka": k,
        "sink": {"url": "file:///out/degraded"},
        "template": {"volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}]},
    });
    merge(&mut spec, extra);
    spec
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

/// Nothing made the operator restart.
async fn operator_did_not_crash_loop(s: &Scenario) {
    let restarts = operator_restarts(&s.client).await;
    assert_eq!(restarts.len(), 2, "two operator containers: {restarts:?}");
    assert!(
        restarts.iter().all(|(_, n)| *n == 0),
        "the operator does not crash-loop: {restarts:?}"
    );
}

/// `message` is `start`, something, then `end`.
pub fn framed(message: &str, start: &str, end: &str) {
    assert!(
        message.starts_with(start)
            && message.ends_with(end)
            && message.len() >= start.len() + end.len(),
        "message:\n  {message}\nwanted:\n  {start}...{end}"
    );
}

/// A Kafka failure's message: Millpond's words `ours` exactly, librdkafka's
/// own words in parentheses, and what the operator keeps.
fn kafka_failure(message: &str, ours: &str) {
    framed(
        message,
        &format!("{ours} (librdkafka: "),
        &format!("); {KEEPING}"),
    );
}

/// What the operator says it keeps while it cannot observe Kafka (a new
/// consumer's first decision: minReplicas).
const KEEPING: &str = "keeping 1 replicas";

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_missing_topic_sets_degraded_topic_not_found() {
    let s = Scenario::new("no-topic").await;
    let topic = kafka::unique_topic("no-such-topic");
    s.create_consumer("no-topic", spec(&topic, json!({}), json!({})))
        .await;
    let c = s.degraded("no-topic", "TopicNotFound").await;
    assert_eq!(
        c.message,
        format!(
            "topic `{topic}` does not exist on {}; {KEEPING}",
            kafka::bootstrap()
        )
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn an_impossible_memory_budget_sets_degraded_memory_budget_with_the_numbers() {
    let s = Scenario::new("budget").await;
    let topic = s.topic("operator-budget", 4, 10).await;
    s.create_consumer(
        "tiny",
        spec(&topic, json!({}), json!({"resources": {"memory": "40Mi"}})),
    )
    .await;
    let c = s.degraded("tiny", "MemoryBudget").await;
    assert_eq!(
        c.message,
        "resources.memory cannot hold the consumer with all 4 partitions assigned: memory budget: \
         budget 40.0Mi is below the 51.0Mi the process needs with 4 partition(s) assigned \
         (base 48.0Mi + a minimal prefetch of 2.9Mi + two minimal batches)"
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_librdkafka_override_librdkafka_refuses_sets_degraded_invalid_spec_naming_it() {
    let s = Scenario::new("override").await;
    let topic = s.topic("operator-override", 4, 10).await;
    let config = json!({"config": {"fetch.max.bytes": "lots"}});
    s.create_consumer("bad-override", spec(&topic, config, json!({})))
        .await;
    let c = s.degraded("bad-override", "InvalidSpec").await;
    assert_eq!(
        c.message,
        "fix the spec: kafka.config: Client config error: \
         Invalid value for configuration property \"fetch.max.bytes\" fetch.max.bytes lots"
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn unreachable_brokers_set_degraded_kafka_unreachable() {
    let s = Scenario::new("no-kafka").await;
    let servers = json!({"bootstrapServers": "127.0.0.1:1"});
    s.create_consumer("no-kafka", spec("orders", servers, json!({})))
        .await;
    let c = s.degraded("no-kafka", "KafkaUnreachable").await;
    kafka_failure(
        &c.message,
        "cannot reach Kafka at 127.0.0.1:1: check the bootstrap address and that the brokers run",
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_wrong_scram_password_sets_degraded_kafka_authentication_failed() {
    let s = Scenario::new("password").await;
    let topic = s.topic("operator-password", 4, 10).await;
    let user = tls::stack_env("KAFKA_SCRAM_TEST_USER");
    s.secret(
        "kafka-wrong",
        &[("username", &user), ("password", "not-the-password")],
    )
    .await;
    ca_secret(&s).await;
    let servers = tls::stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS");
    let kafka = json!({
        "bootstrapServers": servers,
        "sasl": {
            "mechanism": "SCRAM-SHA-512",
            "usernameSecretRef": {"name": "kafka-wrong", "key": "username"},
            "passwordSecretRef": {"name": "kafka-wrong", "key": "password"},
        },
        "tls": {"caSecretRef": {"name": "kafka-ca", "key": "ca.crt"}},
    });
    s.create_consumer("wrong-password", spec(&topic, kafka, json!({})))
        .await;
    let c = s
        .degraded("wrong-password", "KafkaAuthenticationFailed")
        .await;
    kafka_failure(
        &c.message,
        &format!(
            "Kafka refused the credentials (authentication failed) at {servers}: \
             check the SASL mechanism, username and password (kafka.sasl)"
        ),
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_ca_that_did_not_sign_the_brokers_certificate_sets_degraded_kafka_tls_failed() {
    let s = Scenario::new("wrong-ca").await;
    let topic = s.topic("operator-wrong-ca", 4, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = std::fs::read_to_string(tls::untrusted_ca(dir.path())).unwrap();
    s.secret("other-ca", &[("ca.crt", &ca)]).await;
    let servers = tls::stack_env("KAFKA_SSL_BOOTSTRAP_SERVERS");
    let kafka = json!({
        "bootstrapServers": servers,
        "tls": {"caSecretRef": {"name": "other-ca", "key": "ca.crt"}},
    });
    s.create_consumer("wrong-ca", spec(&topic, kafka, json!({})))
        .await;
    let c = s.degraded("wrong-ca", "KafkaTLSFailed").await;
    kafka_failure(
        &c.message,
        &format!(
            "TLS handshake with Kafka failed at {servers}: the brokers' certificate is not signed \
             by the trusted CA (unable to get local issuer certificate): check kafka.tls.caSecretRef / ssl.ca.location"
        ),
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_missing_credentials_secret_sets_degraded_secret_not_found_naming_the_field() {
    let s = Scenario::new("no-secret").await;
    let topic = s.topic("operator-no-secret", 4, 10).await;
    let kafka = json!({
        "bootstrapServers": tls::stack_env("KAFKA_SASL_BOOTSTRAP_SERVERS"),
        "sasl": {
            "mechanism": "PLAIN",
            "usernameSecretRef": {"name": "no-such-secret", "key": "username"},
            "passwordSecretRef": {"name": "no-such-secret", "key": "password"},
        },
    });
    s.create_consumer("no-secret", spec(&topic, kafka, json!({})))
        .await;
    let c = s.degraded("no-secret", "SecretNotFound").await;
    assert_eq!(
        c.message,
        format!(
            "kafka.sasl.usernameSecretRef refers to key `username` of Secret `no-such-secret`, \
             which does not exist or is not UTF-8 text; create it in the consumer's namespace; {KEEPING}"
        )
    );
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_file_sink_off_every_volume_sets_degraded_sink_not_on_volume_and_runs_no_pod() {
    let s = Scenario::new("no-volume").await;
    let topic = s.topic("operator-no-volume", 4, 10).await;
    let spec = json!({
        "kafka": {"bootstrapServers": kafka::bootstrap(), "topic": topic},
        "sink": {"url": "file:///data/orders"},
    });
    s.create_consumer("no-volume", spec).await;
    let c = s.degraded("no-volume", "SinkNotOnVolume").await;
    assert_eq!(
        c.message,
        "fix the spec: sink.url file:///data/orders is not on a mounted volume: the pod's root file \
         system is read-only; add spec.template.volumes with a mountPath of /data/orders or a parent \
         (emptyDir or persistentVolumeClaim)"
    );
    // Given the operator's interval to have started one, had it wanted to.
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL_SECONDS as u64)).await;
    let pods = s.consumer_pods("no-volume").await;
    assert!(pods.is_empty(), "no pod runs for it: {pods:?}");
    operator_did_not_crash_loop(&s).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn a_ready_pod_whose_metrics_cannot_be_read_sets_degraded_metrics_unavailable_naming_it() {
    let s = Scenario::new("metrics").await;
    let topic = s.topic("operator-metrics", 4, 10).await;
    s.create_consumer("orders", spec(&topic, json!({}), json!({})))
        .await;
    s.rolled_out("orders", Duration::from_secs(120)).await;
    let pods = s.consumer_pods("orders").await;
    assert_eq!(pods.len(), 1, "one pod");
    let pod = pods[0].metadata.name.clone().unwrap();
    let container = pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .expect("a running container");

    // Its process paused, the pod stays ready until its readiness probe
    // fails twice, but answers nothing.
    let paused = Paused::new(container_pid(&container));
    let c = s
        .condition_reason(
            "orders",
            "Degraded",
            "MetricsUnavailable",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.status, "True");
    framed(
        &c.message,
        &format!("cannot read the metrics of ready pods [\"{pod}\"] ("),
        "); keeping the last decision: check that the operator can reach the pods' port 9090",
    );
    drop(paused);
    let c = s
        .condition_reason("orders", "Degraded", "AsExpected", Duration::from_secs(90))
        .await;
    assert_eq!(c.status, "False", "the pod answers again: {c:?}");
}
