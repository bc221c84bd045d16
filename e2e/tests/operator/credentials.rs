//! Production settings from Secrets: SASL_SSL with SCRAM-SHA-512 and the
//! brokers' CA, and mutual TLS with a client certificate. The pods (TLS
//! material mounted from the Secrets) and the operator's own Kafka client
//! (the same Secrets, in memory) both connect over those listeners.

use std::time::Duration;

use millpond_crds::MillpondConsumer;
use millpond_testkit::tls::stack_env;
use serde_json::{json, Value};

use crate::support::*;

/// The brokers' CA as a Secret `kafka-ca` (key `ca.crt`).
pub async fn ca_secret(s: &Scenario) {
    let ca = std::fs::read_to_string(stack_env("KAFKA_CA_FILE")).expect("the brokers' CA");
    s.secret("kafka-ca", &[("ca.crt", &ca)]).await;
}

/// A consumer of `kafka` (servers, topic and credentials) into
/// `file:///sink/<name>` on the claim `sink`.
fn secure_consumer(name: &str, kafka: Value) -> Value {
    json!({
        "kafka": kafka,
        "sink": {"url": format!("file:///sink/{name}")},
        "template": {"volumes": [
            {"name": "sink", "mountPath": "/sink", "persistentVolumeClaim": {"claimName": "sink"}}
        ]},
        "resources": {"memory": "256Mi"},
    })
}

/// Every record once at the sink, the group's commits at the end of the
/// log, and lag 0 read by the operator over the same listener; not
/// Degraded.
async fn delivers_every_record_once(s: &Scenario, name: &str, topic: &str, sink: &std::path::Path) {
    let mpc = s.consumer(name).await;
    let lines = all_delivered(&sink.join(name), RECORDS, Duration::from_secs(180)).await;
    assert_eq!(
        lines as u64, RECORDS,
        "{name}: every record once, no line twice"
    );
    committed_to_the_end(
        &mpc.spec.kafka.group_id(),
        topic,
        4,
        Duration::from_secs(60),
    )
    .await;
    let mpc = wait_for(
        &s.api::<MillpondConsumer>(),
        name,
        Duration::from_secs(60),
        &format!("the operator reads lag 0 of {name} over its listener"),
        |m: Option<&MillpondConsumer>| {
            m.and_then(|m| m.status.as_ref()?.lag.as_ref())
                .is_some_and(|l| l.total == 0)
        },
    )
    .await
    .expect("the consumer exists");
    let degraded = condition(&mpc, "Degraded").expect("a Degraded condition");
    assert_eq!(
        degraded.status, "False",
        "{name} is not Degraded: {degraded:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn sasl_scram_over_tls_with_credentials_from_secrets_delivers_every_record_once() {
    let s = Scenario::new("sasl").await;
    let topic = s.topic("operator-sasl", 4, RECORDS).await;
    let sink = s.host_volume("sink").await;
    let (user, password) = (
        stack_env("KAFKA_SCRAM_TEST_USER"),
        stack_env("KAFKA_SCRAM_TEST_PASSWORD"),
    );
    s.secret(
        "kafka-user",
        &[("username", &user), ("password", &password)],
    )
    .await;
    ca_secret(&s).await;
    let kafka = json!({
        "bootstrapServers": stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
        "topic": topic,
        "sasl": {
            "mechanism": "SCRAM-SHA-512",
            "usernameSecretRef": {"name": "kafka-user", "key": "username"},
            "passwordSecretRef": {"name": "kafka-user", "key": "password"},
        },
        "tls": {"caSecretRef": {"name": "kafka-ca", "key": "ca.crt"}},
    });
    s.create_consumer("secure", secure_consumer("secure", kafka))
        .await;
    delivers_every_record_once(&s, "secure", &topic, &sink).await;
}

#[tokio::test]
#[ignore = "needs the local stack: e2e/stack up, then e2e/test"]
async fn mutual_tls_with_a_client_certificate_from_secrets_delivers_every_record_once() {
    let s = Scenario::new("mtls").await;
    let topic = s.topic("operator-mtls", 4, RECORDS).await;
    let sink = s.host_volume("sink").await;
    ca_secret(&s).await;
    let read = |var: &str| std::fs::read_to_string(stack_env(var)).expect(var);
    let (cert, key) = (
        read("KAFKA_CLIENT_CERT_FILE"),
        read("KAFKA_CLIENT_KEY_FILE"),
    );
    s.secret("kafka-client", &[("tls.crt", &cert), ("tls.key", &key)])
        .await;
    let kafka = json!({
        "bootstrapServers": stack_env("KAFKA_MTLS_BOOTSTRAP_SERVERS"),
        "topic": topic,
        "tls": {
            "caSecretRef": {"name": "kafka-ca", "key": "ca.crt"},
            "certSecretRef": {"name": "kafka-client", "key": "tls.crt"},
            "keySecretRef": {"name": "kafka-client", "key": "tls.key"},
        },
    });
    s.create_consumer("mtls", secure_consumer("mtls", kafka))
        .await;
    delivers_every_record_once(&s, "mtls", &topic, &sink).await;
}
