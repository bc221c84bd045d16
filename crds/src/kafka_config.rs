//! The librdkafka properties `kafka.config` may not set, and the CEL rules
//! that make the API server refuse them.
//!
//! The tables are `millpond_core::properties`': they drive the CEL rules in
//! the CRD and [`check`], so the API server, the operator and the pods refuse
//! exactly the same properties.

use std::collections::BTreeMap;

use kube::core::Rule;
pub use millpond_core::properties::{refused, Guarded, FROM_SASL_AND_TLS, GUARDED};

use crate::{Error, Result};

/// Refuses the properties of [`GUARDED`], and those of [`FROM_SASL_AND_TLS`]
/// when `sasl_or_tls` (the spec sets `kafka.sasl` or `kafka.tls`).
pub fn check(config: &BTreeMap<String, String>, sasl_or_tls: bool) -> Result<()> {
    if let Some((g, _)) = refused(config, true) {
        return Err(Error::KafkaConfig {
            key: g.key.to_string(),
            why: g.why.to_string(),
        });
    }
    if sasl_or_tls {
        if let Some(key) = FROM_SASL_AND_TLS.iter().find(|k| config.contains_key(**k)) {
            return Err(Error::KafkaConfig {
                key: key.to_string(),
                why: "it is derived from kafka.sasl and kafka.tls".to_string(),
            });
        }
    }
    Ok(())
}

/// CEL string literal (the keys and values above hold no quotes).
fn lit(s: &str) -> String {
    format!("'{s}'")
}

fn cel_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(lit).collect::<Vec<_>>().join(", "))
}

/// The CEL rule on `kafka.config` that refuses [`GUARDED`] properties.
pub fn guarded_rule() -> Rule {
    let allowed = format!(
        "{{{}}}",
        GUARDED
            .iter()
            .filter_map(|g| g.allowed.map(|a| format!("{}: {}", lit(g.key), lit(a))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let never = cel_list(
        GUARDED
            .iter()
            .filter(|g| g.allowed.is_none())
            .map(|g| g.key),
    );
    let refused = format!("(k in {allowed} ? self[k].lowerAscii() != {allowed}[k] : k in {never})");
    Rule::new(format!("!self.exists(k, {refused})")).message(guarded_message().as_str())
}

/// The message of [`guarded_rule`]: every refused property, and what to use.
fn guarded_message() -> String {
    let pinned = GUARDED
        .iter()
        .filter_map(|g| g.allowed.map(|a| format!("{}={a}", g.key)))
        .collect::<Vec<_>>()
        .join(", ");
    let never = GUARDED
        .iter()
        .filter(|g| g.allowed.is_none())
        .map(|g| g.key)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "kafka.config may set {pinned} only to these values (at-least-once delivery) \
         and must not set {never}: use kafka.groupId, kafka.bootstrapServers, and Secrets \
         through kafka.sasl and kafka.tls"
    )
}

/// The CEL rule on `kafka` that refuses [`FROM_SASL_AND_TLS`] properties in
/// `config` when `sasl` or `tls` is set.
pub fn sasl_tls_rule() -> Rule {
    let keys = cel_list(FROM_SASL_AND_TLS.iter().copied());
    Rule::new(format!(
        "!(has(self.sasl) || has(self.tls)) || !has(self.config) || !self.config.exists(k, k in {keys})"
    ))
    .message(format!(
        "kafka.config must not set {} when kafka.sasl or kafka.tls is used: they are derived from them",
        FROM_SASL_AND_TLS.join(", ")
    ).as_str())
    .field_path(".config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn refuses_auto_commit_but_accepts_the_value_we_set_anyway() {
        let err = check(&config(&[("enable.auto.commit", "true")]), false).unwrap_err();
        assert!(err.to_string().contains("at-least-once"), "{err}");
        check(&config(&[("enable.auto.commit", "FALSE")]), false).unwrap();
    }

    #[test]
    fn refuses_credentials_in_plain_text() {
        let err = check(&config(&[("sasl.password", "hunter2")]), false).unwrap_err();
        assert_eq!(err.metric_label(), "kafka_config");
        assert!(err.to_string().contains("passwordSecretRef"), "{err}");
    }

    #[test]
    fn security_protocol_is_free_only_without_sasl_and_tls() {
        let c = config(&[("security.protocol", "SSL"), ("fetch.min.bytes", "1")]);
        check(&c, false).unwrap();
        assert!(check(&c, true).is_err());
    }

    #[test]
    fn the_cel_rule_names_every_guarded_property() {
        let rule = guarded_rule();
        for g in GUARDED {
            assert!(rule.rule.contains(&format!("'{}'", g.key)), "{}", g.key);
        }
    }
}
