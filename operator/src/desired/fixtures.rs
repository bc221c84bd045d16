//! Inline `MillpondConsumer`s and helpers shared by the builders' tests.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use millpond_crds::{CurrentLimits, MillpondConsumer};

use super::BuildContext;
use crate::controller::validate::{validate, Validated};

pub const UID: &str = "6b1c4a7e-0f43-4d5e-9c1a-2f1f6f1b2a11";
pub const TOKEN: &str = "admin-token-7f3a9c";

/// `orders` in `pond` ([`UID`]) at `generation`, as the API server returns
/// it, up to its spec.
macro_rules! head {
    ($generation:literal) => {
        concat!(
            "apiVersion: millpond.io/v1alpha1\nkind: MillpondConsumer\n",
            "metadata: {name: orders, namespace: pond, ",
            "uid: 6b1c4a7e-0f43-4d5e-9c1a-2f1f6f1b2a11, generation: ",
            $generation,
            "}\n"
        )
    };
}

/// The smallest consumer with a file sink the operator runs, as read back
/// from the API server: the sink writes onto its one volume.
pub const MINIMAL: &str = concat!(
    head!(1),
    r#"spec:
  kafka:
    bootstrapServers: kafka-0.kafka:9092,kafka-1.kafka:9092
    topic: orders
  sink:
    url: file:///data/orders
  template:
    volumes:
    - {name: data, mountPath: /data, emptyDir: {}}
"#
);

/// The line of [`MINIMAL`] that declares its volume.
pub const MINIMAL_VOLUME: &str = "    - {name: data, mountPath: /data, emptyDir: {}}\n";

/// SASL over TLS with mutual TLS, an HTTP sink and every template override.
pub const FULL: &str = concat!(
    head!(4),
    r#"spec:
  kafka:
    bootstrapServers: kafka:9093
    topic: orders
    groupId: billing
    config:
      auto.offset.reset: earliest
      fetch.min.bytes: "1"
    sasl:
      mechanism: SCRAM-SHA-512
      usernameSecretRef: {name: kafka-user, key: username}
      passwordSecretRef: {name: kafka-user, key: password}
    tls:
      caSecretRef: {name: kafka-ca, key: ca.crt}
      certSecretRef: {name: kafka-client, key: tls.crt}
      keySecretRef: {name: kafka-client, key: tls.key}
  sink:
    url: https://ingest.example.com/orders
    metadata: true
    deadLetterTopic: orders-dlq
    giveUpAfterSeconds: 600
    http: {timeoutMs: 10000}
  resources:
    memory: 512Mi
    cpu: 500m
  limits:
    flushBytes: 8Mi
    maxInFlight: 2
  autoscaling:
    minReplicas: 2
    maxReplicas: 6
  template:
    image: registry.example.com/millpond/consumer:custom
    imagePullPolicy: Always
    labels: {team: billing, app.kubernetes.io/instance: hijack}
    annotations: {example.com/owner: billing}
    nodeSelector: {pool: consumers}
    tolerations:
    - {key: dedicated, operator: Equal, value: consumers, effect: NoSchedule}
    serviceAccountName: orders-reader
    priorityClassName: batch-high
    env:
    - {name: RUST_LOG, value: debug}
    - {name: FLUSH_BYTES, value: "1"}
    - {name: KAFKA_TOPIC, value: other}
"#
);

pub fn mpc(yaml: &str) -> MillpondConsumer {
    serde_yaml::from_str(yaml).expect("the fixture parses")
}

/// `yaml` with `from` replaced by `to` (which must occur).
pub fn edit(yaml: &str, from: &str, to: &str) -> MillpondConsumer {
    assert!(yaml.contains(from), "fixture has no `{from}`");
    mpc(&yaml.replacen(from, to, 1))
}

/// `mpc` as the reconcile's first step passes it on; panics with the
/// refusal when the fixture's spec is not valid.
pub fn valid(mpc: &MillpondConsumer) -> Validated<'_> {
    validate(mpc).unwrap_or_else(|e| panic!("the fixture's spec is refused: {e}"))
}

pub fn ctx() -> BuildContext {
    BuildContext::new("millpond/consumer:0.1.0", TOKEN)
}

pub fn limits() -> CurrentLimits {
    CurrentLimits {
        flush_bytes: 4 << 20,
        flush_interval_ms: 5000,
        max_in_flight: 4,
        consume_batch_size: 1000,
        generation: 3,
    }
}

pub fn container(d: &Deployment) -> &Container {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1);
    &pod.containers[0]
}

pub fn env_var<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    let matching: Vec<_> = c.env.iter().flatten().filter(|e| e.name == name).collect();
    assert!(
        matching.len() <= 1,
        "{name} is set {} times",
        matching.len()
    );
    matching.first().copied()
}

/// The plain value of env var `name`; panics when it is missing or comes
/// from a reference.
pub fn env_value<'a>(c: &'a Container, name: &str) -> &'a str {
    let var = env_var(c, name).unwrap_or_else(|| panic!("{name} is not set"));
    assert!(var.value_from.is_none(), "{name} is a reference");
    var.value.as_deref().unwrap_or_default()
}

/// The Secret and key env var `name` refers to; panics when it is missing
/// or has a plain value.
pub fn secret_of<'a>(c: &'a Container, name: &str) -> (&'a str, &'a str) {
    let var = env_var(c, name).unwrap_or_else(|| panic!("{name} missing"));
    assert!(var.value.is_none(), "{name} has a plain value");
    let r = var
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{name} is not a secretKeyRef"));
    (r.name.as_str(), r.key.as_str())
}
