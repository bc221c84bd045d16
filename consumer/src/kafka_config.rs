//! Extra librdkafka properties from the user, and the ones we refuse.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Properties the consumer owns: each would break a guarantee if overridden.
/// `(key, allowed value or None if never allowed, why)`.
const GUARDED: &[(&str, Option<&str>, &str)] = &[
    (
        "enable.auto.commit",
        Some("false"),
        "offsets are committed only after the sink acknowledged a batch (at-least-once)",
    ),
    (
        "enable.auto.offset.store",
        Some("false"),
        "offsets are stored only after the sink acknowledged a batch (at-least-once)",
    ),
    (
        "partition.assignment.strategy",
        Some("cooperative-sticky"),
        "the consumer hands partitions over incrementally (cooperative-sticky)",
    ),
    (
        "group.protocol",
        Some("classic"),
        "the hand-off on rebalance relies on the classic group protocol",
    ),
    ("group.id", None, "set the group with KAFKA_GROUP_ID"),
    (
        "bootstrap.servers",
        None,
        "set the brokers with KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        "metadata.broker.list",
        None,
        "set the brokers with KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        "enable.partition.eof",
        None,
        "the consumer manages end-of-partition events itself",
    ),
];

/// Parses `key=value` pairs separated by commas or newlines; `#` starts a
/// comment line. Used for `KAFKA_CONFIG` and the `KAFKA_CONFIG_FILE` contents.
pub fn parse_properties(source: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for raw in text.split(['\n', ',']) {
        let item = raw.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(Error::Config(format!(
                "{source}: `{item}` is not a `key=value` librdkafka property"
            )));
        };
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// Refuses the properties that would break the consumer's guarantees.
pub fn validate(source: &str, props: &BTreeMap<String, String>) -> Result<()> {
    for (key, allowed, why) in GUARDED {
        if let Some(value) = props.get(*key) {
            let ok = allowed.is_some_and(|a| a.eq_ignore_ascii_case(value));
            if !ok {
                return Err(Error::Config(format!(
                    "{source}: `{key}={value}` is not allowed: {why}; remove it"
                )));
            }
        }
    }
    Ok(())
}

/// Reads an optional numeric property the budget needs to know about.
pub fn numeric(props: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>> {
    props
        .get(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Error::Config(format!("librdkafka property `{key}={v}` must be a number"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_newlines_and_comments() {
        let props = parse_properties(
            "KAFKA_CONFIG",
            "security.protocol=SASL_SSL, sasl.mechanism = PLAIN\n# comment\nfetch.wait.max.ms=100",
        )
        .unwrap();
        assert_eq!(props["sasl.mechanism"], "PLAIN");
        assert_eq!(props.len(), 3);
    }

    #[test]
    fn refuses_auto_commit_with_the_reason() {
        let props = parse_properties("KAFKA_CONFIG", "enable.auto.commit=true").unwrap();
        let err = validate("KAFKA_CONFIG", &props).unwrap_err().to_string();
        assert!(
            err.contains("`enable.auto.commit=true` is not allowed")
                && err.contains("at-least-once"),
            "{err}"
        );
    }

    #[test]
    fn allows_the_values_we_would_set_anyway() {
        let props = parse_properties(
            "f",
            "enable.auto.commit=false,partition.assignment.strategy=cooperative-sticky",
        )
        .unwrap();
        validate("f", &props).unwrap();
    }

    #[test]
    fn refuses_eager_assignment_and_group_override() {
        for bad in ["partition.assignment.strategy=range", "group.id=other"] {
            let props = parse_properties("f", bad).unwrap();
            assert!(validate("f", &props).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_malformed_pairs() {
        let err = parse_properties("KAFKA_CONFIG", "fetch.wait.max.ms")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a `key=value`"), "{err}");
    }
}
