//! The operator's view of Kafka against the real broker of the local stack:
//! offsets of every partition in batched requests over each listener, one
//! client reused, and a `Degraded` reason per kind of connection failure.
//! Needs a running broker (`e2e/stack up kafka`); `e2e/test` runs these with
//! `--include-ignored`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use millpond_crds::condition::reason;
use millpond_operator::observe::kafka::{KafkaObserveError, KafkaTarget, Observers};
use millpond_testkit::{kafka, tls};

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn props(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn target(servers: String, topic: &str, properties: BTreeMap<String, String>) -> KafkaTarget {
    KafkaTarget {
        bootstrap_servers: servers,
        topic: topic.into(),
        group: format!("{topic}-group"),
        properties,
    }
}

/// SASL_SSL with SCRAM-SHA-512 and the stack's CA, as a Secret would give it.
fn scram(password: &str, ca_pem: &str) -> BTreeMap<String, String> {
    props(&[
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        ("sasl.username", tls::stack_env("KAFKA_SCRAM_TEST_USER")),
        ("sasl.password", password.into()),
        ("ssl.ca.pem", ca_pem.into()),
    ])
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn every_partition_and_the_groups_commits_are_read_over_plaintext_and_sasl_ssl_by_one_client_each()
{
    let rt = runtime();
    let servers = kafka::bootstrap();
    let topic = kafka::unique_topic("observe");
    const PARTITIONS: i32 = 16;
    rt.block_on(kafka::create_topic(&servers, &topic, PARTITIONS))
        .unwrap();
    // 100 records per partition, round-robin.
    kafka::produce_json(&servers, &topic, PARTITIONS, 0..1_600, 100).unwrap();
    let commits: BTreeMap<i32, i64> = (0..PARTITIONS).step_by(2).map(|p| (p, p as i64)).collect();
    kafka::commit(&servers, &format!("{topic}-group"), &topic, &commits).unwrap();

    let ca = std::fs::read_to_string(tls::stack_env("KAFKA_CA_FILE")).unwrap();
    let observers = Arc::new(Observers::new(Duration::from_secs(600)));
    let targets = [
        target(servers.clone(), &topic, BTreeMap::new()),
        target(
            tls::stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
            &topic,
            scram(&tls::stack_env("KAFKA_SCRAM_TEST_PASSWORD"), &ca),
        ),
    ];
    for t in &targets {
        let offsets = rt.block_on(observers.observe(t.clone(), TIMEOUT)).unwrap();
        assert_eq!(offsets.len(), PARTITIONS as usize, "{t:?}");
        for (o, p) in offsets.iter().zip(0..) {
            assert_eq!(
                (o.partition, o.low, o.high, o.committed),
                (p, 0, 100, commits.get(&p).copied()),
                "{t:?}"
            );
        }
    }
    assert_eq!(
        observers.open_clients(),
        2,
        "one client per listener and credentials"
    );
    // Another interval, and a consumer on the same cluster with other fetch
    // settings: the same two clients.
    let mut other = targets[0].clone();
    other
        .properties
        .insert("fetch.wait.max.ms".into(), "50".into());
    rt.block_on(observers.observe(other, TIMEOUT)).unwrap();
    rt.block_on(observers.observe(targets[1].clone(), TIMEOUT))
        .unwrap();
    assert_eq!(observers.open_clients(), 2, "clients are reused");
}

/// The error observing `topic` through `properties` at `servers` gives.
fn failure(servers: String, properties: BTreeMap<String, String>) -> KafkaObserveError {
    let observers = Arc::new(Observers::new(Duration::from_secs(600)));
    runtime()
        .block_on(observers.observe(target(servers.clone(), "any", properties), TIMEOUT))
        .expect_err(&servers)
}

#[test]
#[ignore = "needs the local Kafka broker: run e2e/test"]
fn unreachable_tls_and_authentication_failures_get_their_own_reason_and_message() {
    let work = tempfile::tempdir().unwrap();
    let ca = std::fs::read_to_string(tls::stack_env("KAFKA_CA_FILE")).unwrap();
    let other_ca = tls::untrusted_ca(work.path());
    let other_ca = std::fs::read_to_string(other_ca).unwrap();
    let tls = |ca: &str| {
        props(&[
            ("security.protocol", "SSL".into()),
            ("ssl.ca.pem", ca.into()),
        ])
    };

    // A port nothing listens on.
    let host = tls::stack_env("KAFKA_BOOTSTRAP_SERVERS");
    let unreachable = format!("{}:1", host.rsplit_once(':').unwrap().0);
    let wrong_name = format!(
        "the brokers' certificate does not name the address connected to ({}); it names kafka.wrong-name.invalid",
        tls::wrong_name_host()
    );
    let cases = [
        (
            tls::stack_env("KAFKA_SSL_BOOTSTRAP_SERVERS"),
            tls(&other_ca),
            reason::KAFKA_TLS_FAILED,
            "TLS handshake with Kafka failed at",
            "not signed by the trusted CA",
        ),
        (
            tls::stack_env("KAFKA_WRONG_NAME_BOOTSTRAP_SERVERS"),
            tls(&ca),
            reason::KAFKA_TLS_FAILED,
            "TLS handshake with Kafka failed at",
            wrong_name.as_str(),
        ),
        (
            tls::stack_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
            scram("not-the-password", &ca),
            reason::KAFKA_AUTHENTICATION_FAILED,
            "Kafka refused the credentials (authentication failed) at",
            "check the SASL mechanism, username and password",
        ),
        (
            unreachable,
            BTreeMap::new(),
            reason::KAFKA_UNREACHABLE,
            "cannot reach Kafka at",
            "check the bootstrap address",
        ),
    ];
    for (servers, properties, why, starts, names) in cases {
        let e = failure(servers, properties);
        assert_eq!(e.reason(), why, "{e}");
        let message = e.to_string();
        assert!(
            message.starts_with(starts) && message.contains(names),
            "{e}"
        );
    }
}
