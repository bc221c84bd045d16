//! Step 1, validate (no client): the schema's rules again (a spec written
//! before a rule existed), librdkafka's own judgement of the overrides, and
//! the numbers the memory budget reads.

use std::collections::BTreeMap;

use millpond_core::properties as kafka_config;
use millpond_crds::condition::reason;
use millpond_crds::MillpondConsumer;
use rdkafka::config::ClientConfig;

use super::degraded::Degraded;

/// What the later steps read from a spec that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    /// `resources.memory`, bytes.
    pub memory: u64,
    /// The overrides of `queued.max.messages.kbytes`, `fetch.max.bytes` and
    /// `max.partition.fetch.bytes`.
    pub queued_max_messages_kbytes: Option<u64>,
    pub fetch_max_bytes: Option<u64>,
    pub max_partition_fetch_bytes: Option<u64>,
}

/// Checks `mpc`'s spec; a refusal says what to fix.
pub fn validate(mpc: &MillpondConsumer) -> Result<Validated, Degraded> {
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

    #[test]
    fn a_valid_spec_gives_its_memory_and_overrides() {
        let v = validate(&mpc(MINIMAL)).expect("valid");
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
