//! Extra librdkafka properties from the user (`KAFKA_CONFIG`,
//! `KAFKA_CONFIG_FILE`), checked against the properties Millpond owns.

use std::collections::BTreeMap;

use millpond_core::properties::refused;

use crate::{Error, Result};

pub use millpond_core::properties::{numeric, parse_properties};

/// Refuses the properties that would break the consumer's guarantees
/// (`millpond_core::properties::GUARDED`; credentials are allowed here: the
/// pod reads them from the file mounted from their Secret).
pub fn validate(source: &str, props: &BTreeMap<String, String>) -> Result<()> {
    match refused(props, false) {
        Some((g, value)) => Err(Error::Config(format!(
            "{source}: `{}={value}` is not allowed: {}; remove it",
            g.key, g.why
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_auto_commit_with_the_reason_and_allows_mounted_credentials() {
        let props = parse_properties("KAFKA_CONFIG", "enable.auto.commit=true").unwrap();
        let err = validate("KAFKA_CONFIG", &props).unwrap_err().to_string();
        assert!(
            err.contains("KAFKA_CONFIG: `enable.auto.commit=true` is not allowed")
                && err.contains("at-least-once"),
            "{err}"
        );
        let file = parse_properties("KAFKA_CONFIG_FILE", "sasl.password=s3cret").unwrap();
        validate("KAFKA_CONFIG_FILE", &file).unwrap();
    }
}
