//! Step 1, validate (no client): the schema's rules again (a spec written
//! before a rule existed), librdkafka's own judgement of the overrides, and
//! the numbers the memory budget reads.

use std::collections::BTreeMap;

use millpond_core::properties as kafka_config;
use millpond_crds::condition::reason;
use millpond_crds::MillpondConsumer;
use rdkafka::config::ClientConfig;

use super::degraded::Degraded;

/// A consumer whose spec passed, and what the later steps read from it.
/// Only [`validate`] makes one, so a step that takes it (the desired
/// objects) need not check the spec again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validated<'a> {
    mpc: &'a MillpondConsumer,
    /// `resources.memory`, bytes.
    pub memory: u64,
    /// The overrides of `queued.max.messages.kbytes`, `fetch.max.bytes` and
    /// `max.partition.fetch.bytes`.
    pub queued_max_messages_kbytes: Option<u64>,
    pub fetch_max_bytes: Option<u64>,
    pub max_partition_fetch_bytes: Option<u64>,
}

impl<'a> Validated<'a> {
    /// The consumer that passed.
    pub fn mpc(&self) -> &'a MillpondConsumer {
        self.mpc
    }
}

/// Checks `mpc`'s spec; a refusal says what to fix.
pub fn validate(mpc: &MillpondConsumer) -> Result<Validated<'_>, Degraded> {
    let spec = &mpc.spec;
    spec.validate()
        .map_err(|e| Degraded::spec(e.degraded_reason(), e.to_string()))?;
    let overrides = &spec.kafka.config;
    librdkafka_accepts(overrides).map_err(Degraded::InvalidSpec)?;
    let numeric = |key: &str| {
        kafka_config::numeric(overrides, key)
            .map_err(|e| Degraded::InvalidSpec(format!("kafka.config: {e}")))
    };
    let memory = spec
        .resources
        .memory_bytes()
        .map_err(|e| Degraded::spec(reason::INVALID_SPEC, e.to_string()))?;
    Ok(Validated {
        mpc,
        memory,
        queued_max_messages_kbytes: numeric("queued.max.messages.kbytes")?,
        fetch_max_bytes: numeric("fetch.max.bytes")?,
        max_partition_fetch_bytes: numeric("max.partition.fetch.bytes")?,
    })
}

/// Checks the user's librdkafka properties (`spec.kafka.config`) the way
/// librdkafka will when a pod starts: an unknown property or a value it
/// refuses is reported now, as a spec error, instead of as pods that fail to
/// start. No client is created.
fn librdkafka_accepts(config: &BTreeMap<String, String>) -> Result<(), String> {
    let mut client = ClientConfig::new();
    for (key, value) in config {
        client.set(key, value);
    }
    client
        .create_native_config()
        .map(drop)
        .map_err(|e| format!("kafka.config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{edit, mpc, MINIMAL};

    /// The reason and message of `mpc`'s refusal.
    fn refusal(mpc: &MillpondConsumer) -> (&'static str, String) {
        let why = validate(mpc).expect_err("refused");
        (why.reason(), why.to_string())
    }

    #[test]
    fn an_unusable_memory_quantity_is_refused_naming_the_field() {
        let m = edit(MINIMAL, "spec:\n", "spec:\n  resources: {memory: 256m}\n");
        let (reason, message) = refusal(&m);
        assert_eq!(reason, "InvalidSpec");
        assert!(message.contains("resources.memory: `256m`"), "{message}");
    }

    #[test]
    fn a_file_sink_off_the_volumes_is_refused_with_its_own_reason() {
        let m = edit(MINIMAL, "file:///data/orders", "file:///tmp/orders");
        let (reason, message) = refusal(&m);
        assert_eq!(reason, "SinkNotOnVolume");
        assert!(
            message.contains("add spec.template.volumes with a mountPath of /tmp/orders"),
            "{message}"
        );
    }

    #[test]
    fn a_refused_property_is_reported_with_the_api_servers_words() {
        let m = edit(
            MINIMAL,
            "topic: orders",
            "topic: orders\n    config: {enable.auto.commit: 'true'}",
        );
        let (reason, message) = refusal(&m);
        assert_eq!(reason, "InvalidSpec");
        assert!(message.contains("at-least-once"), "{message}");
    }

    #[test]
    fn a_valid_spec_gives_its_memory_and_overrides() {
        let minimal = mpc(MINIMAL);
        let v = validate(&minimal).expect("valid");
        assert!(v.memory > 0);
        let with = edit(
            MINIMAL,
            "    topic: orders\n",
            "    topic: orders\n    config: {fetch.max.bytes: \"1048576\"}\n",
        );
        assert_eq!(validate(&with).unwrap().fetch_max_bytes, Some(1_048_576));
    }

    #[test]
    fn an_override_librdkafka_refuses_is_an_invalid_spec() {
        let with = edit(
            MINIMAL,
            "    topic: orders\n",
            "    topic: orders\n    config: {fetch.max.bytes: \"lots\"}\n",
        );
        let err = validate(&with).unwrap_err();
        assert_eq!(err.reason(), "InvalidSpec");
        assert!(err.to_string().starts_with("fix the spec: "), "{err}");
    }
}

#[cfg(test)]
mod librdkafka_tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn librdkafka_judges_the_overrides() {
        assert_eq!(
            librdkafka_accepts(&props(&[
                ("fetch.wait.max.ms", "100"),
                ("auto.offset.reset", "earliest")
            ])),
            Ok(())
        );
        let unknown = librdkafka_accepts(&props(&[("fetch.wait.max.msec", "100")])).unwrap_err();
        assert!(unknown.contains("fetch.wait.max.msec"), "{unknown}");
        let bad = librdkafka_accepts(&props(&[("fetch.max.bytes", "lots")])).unwrap_err();
        assert!(
            bad.starts_with("kafka.config: ") && bad.contains("fetch.max.bytes"),
            "{bad}"
        );
    }
}
